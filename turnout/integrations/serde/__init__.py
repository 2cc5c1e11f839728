"""Serialisation plugins under Burr's module path (``burr.integrations.serde``): ``pickle``
(``register_type_to_pickle``) for types that have no codec of their own."""
