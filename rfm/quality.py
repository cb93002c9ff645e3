"""Validation (SPEC §2.1): every conformed row gets an outcome; nothing is silently dropped or kept.

Order: the first null column, then values that did not parse, then negative amounts; among the rows left,
a payment_id whose copies disagree has every copy rejected (exact copies of one version included: we cannot
tell which version is right, and the rejects table must show all the evidence); otherwise exact duplicates
collapse to one.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from rfm.source import CANONICAL

VALID = "valid"
DUPLICATE = "duplicate"  # an exact copy of a valid row: collapsed, counted, not rejected
CONFLICTING_DUPLICATE = "conflicting_duplicate"
NEGATIVE_AMOUNT = "negative_amount"
INVALID_AMOUNT = "invalid_amount"
INVALID_PAYMENT_DATE = "invalid_payment_date"

REJECT_COLUMNS = ("user_id", "payment_id", "payment_date", "payment_amount", "reason")


def row_reject_reason(allow_negative_amounts: bool) -> Column:
    """The first row-level reason that applies, or null."""
    reason = F.lit(None).cast("string")
    checks: list[tuple[Column, str]] = [(F.col(f"raw_{c}").isNull(), f"null_{c}") for c in CANONICAL]
    checks += [
        (F.col("payment_date").isNull(), INVALID_PAYMENT_DATE),
        (F.col("payment_amount").isNull(), INVALID_AMOUNT),
    ]
    if not allow_negative_amounts:
        checks.append((F.col("payment_amount") < 0, NEGATIVE_AMOUNT))
    for condition, name in reversed(checks):
        reason = F.when(condition, F.lit(name)).otherwise(reason)
    return reason


def with_outcome(conformed_df: DataFrame, allow_negative_amounts: bool) -> DataFrame:
    """Adds `outcome`: 'valid', 'duplicate', or a reject reason."""
    reason_df = conformed_df.withColumn("_reason", row_reject_reason(allow_negative_amounts))
    is_clean = F.col("_reason").isNull()
    same_row = Window.partitionBy(is_clean, *CANONICAL).orderBy(*[F.col(f"raw_{c}") for c in CANONICAL])
    same_payment = Window.partitionBy(is_clean, "payment_id").rowsBetween(
        Window.unboundedPreceding, Window.unboundedFollowing
    )
    is_first_copy = F.row_number().over(same_row) == 1
    versions_of_payment = F.sum(F.when(is_first_copy, 1).otherwise(0)).over(same_payment)
    return (
        reason_df.withColumn("_is_first_copy", is_first_copy)
        .withColumn("_versions", versions_of_payment)
        .withColumn(
            "outcome",
            F.when(~is_clean, F.col("_reason"))
            .when(F.col("_versions") > 1, F.lit(CONFLICTING_DUPLICATE))
            .when(~F.col("_is_first_copy"), F.lit(DUPLICATE))
            .otherwise(F.lit(VALID)),
        )
        .drop("_reason", "_is_first_copy", "_versions")
    )


def filter_valid(outcome_df: DataFrame) -> DataFrame:
    return outcome_df.where(F.col("outcome") == VALID).select(*CANONICAL)


def filter_rejected(outcome_df: DataFrame) -> DataFrame:
    """Rejected rows with their original values as strings."""
    is_rejected = ~F.col("outcome").isin(VALID, DUPLICATE)
    return outcome_df.where(is_rejected).select(
        *[F.col(f"raw_{c}").alias(c) for c in CANONICAL], F.col("outcome").alias("reason")
    )
