"""Burr's serde plugins (``burr.integrations.serde``): codecs registered on
``turnout.core.serde``'s Burr API — ``pandas``, ``pydantic`` and ``langchain`` (loaded when first
needed), and ``pickle`` (``register_type_to_pickle``) for types that have no codec of their own."""
