"""Resource names: defined once in boostline.naming, shared with the local runtime."""

from boostline.naming import (
    ACCOUNT_ID_LENGTH,
    BUCKET_NAME_LIMIT,
    BUCKET_PURPOSES,
    Names,
    names_for,
)

__all__ = ["ACCOUNT_ID_LENGTH", "BUCKET_NAME_LIMIT", "BUCKET_PURPOSES", "Names", "names_for"]
