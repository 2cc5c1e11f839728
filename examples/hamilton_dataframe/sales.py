"""A Hamilton DAG over one batch of orders: each function is a node, its parameters its inputs."""

from __future__ import annotations

from typing import Any

import pandas as pd


def orders(batch: list[dict[str, Any]]) -> pd.DataFrame:
    """The batch as a typed frame: a date column, a category, integer and float columns."""
    frame = pd.DataFrame(batch, columns=["day", "product", "qty", "price"])
    return frame.astype({"day": "datetime64[ns]", "qty": "int64", "price": "float64"})


def revenue(orders: pd.DataFrame) -> pd.Series:
    """Quantity times unit price, per order."""
    return (orders["qty"] * orders["price"]).rename("revenue")


def batch_totals(orders: pd.DataFrame, revenue: pd.Series) -> pd.DataFrame:
    """Units and revenue per day and product, for this batch."""
    return (
        orders.assign(revenue=revenue)
        .groupby(["day", "product"], as_index=False)[["qty", "revenue"]]
        .sum()
    )


def summary(previous_summary: pd.DataFrame, batch_totals: pd.DataFrame) -> pd.DataFrame:
    """The running totals: the previous summary with this batch added in."""
    combined = pd.concat([previous_summary, batch_totals], ignore_index=True)
    totals = combined.groupby(["day", "product"], as_index=False)[["qty", "revenue"]].sum()
    totals["product"] = totals["product"].astype("category")
    return totals.sort_values(["day", "product"], ignore_index=True)
