"""Synthetic consumer-loan applications for the demo and the tests.

Each row is one application in the spirit of a consumer-loan book: the loan
(amount, term, grade, rate, instalment, purpose), the applicant (income,
employment, home, state), their credit file (FICO-like score, delinquencies,
revolving balance and utilisation, accounts, inquiries), PII columns that must
never reach a model, an `age_band` kept only for fairness reports, and the
label `loan_status` (`good`/`bad`).

A hidden creditworthiness `z` drives the credit file, the grade (and through it
the interest rate) and the default probability, so the features are informative
but noisy; unobserved shocks keep a good model near ROC-AUC 0.8. `drift` moves
the economy: lower incomes, dearer credit, more debt consolidation and small
business loans, higher dti and utilisation, more defaults.

Rows are made in blocks of BLOCK_ROWS, each from its own seeded streams, so a
book is the same whether it is built at once (`generate_loans`) or streamed to
disk (`generate_to_dir`), and the same (rows, seed, drift) gives the same bytes.
"""

from __future__ import annotations

import math
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

SCHEMA_PATH = Path(__file__).with_name("loan_schema.yaml")

# Part of the determinism contract: changing it changes every generated book.
BLOCK_ROWS = 100_000
MAX_ROWS = 1_000_000_000  # application ids are seed * MAX_ROWS + row
MAX_SEED = 2**32 - 1

TARGET_COLUMN = "loan_status"
ID_COLUMN = "application_id"
PII_COLUMNS = ("full_name", "email", "national_id", "phone")
SENSITIVE_COLUMNS = ("age_band",)

GRADES = ("A", "B", "C", "D", "E", "F", "G")
GRADE_SHARES = (0.18, 0.29, 0.28, 0.15, 0.07, 0.025, 0.005)
GRADE_RATES = (7.2, 10.9, 14.3, 18.2, 22.0, 25.6, 28.9)
TERMS = ("36 months", "60 months")
HOME_OWNERSHIP = ("MORTGAGE", "RENT", "OWN", "OTHER")
VERIFICATION = ("Not Verified", "Source Verified", "Verified")
AGE_BANDS = ("18-25", "26-35", "36-45", "46-55", "56-65", "66+")
AGE_BAND_EDGES = (26, 36, 46, 56, 66)

# purpose: (share, drift multiplier, log-amount shift, default log-odds shift)
PURPOSES: dict[str, tuple[float, float, float, float]] = {
    "debt_consolidation": (0.580, 0.30, 0.05, 0.10),
    "credit_card": (0.210, 0.00, 0.00, -0.10),
    "home_improvement": (0.065, 0.00, 0.10, -0.10),
    "other": (0.055, 0.00, -0.40, 0.20),
    "major_purchase": (0.022, 0.00, -0.20, 0.00),
    "small_business": (0.012, 1.50, 0.30, 0.60),
    "car": (0.011, 0.00, -0.50, -0.20),
    "medical": (0.011, 0.40, -0.60, 0.25),
    "moving": (0.007, 0.00, -0.60, 0.25),
    "vacation": (0.007, -0.30, -0.70, 0.05),
    "house": (0.006, -0.30, 0.30, 0.10),
    "wedding": (0.002, -0.30, -0.30, -0.15),
    "renewable_energy": (0.001, 0.00, -0.20, 0.10),
    "educational": (0.001, 0.00, -0.50, 0.20),
}

# Rough population shares; the high-cost states pay a little more.
STATES: dict[str, float] = {
    "CA": 39.0, "TX": 30.0, "FL": 22.0, "NY": 19.6, "PA": 13.0, "IL": 12.5, "OH": 11.8,
    "GA": 11.0, "NC": 10.8, "MI": 10.0, "NJ": 9.3, "VA": 8.7, "WA": 7.8, "AZ": 7.4,
    "TN": 7.1, "MA": 7.0, "IN": 6.8, "MO": 6.2, "MD": 6.2, "WI": 5.9, "CO": 5.8,
    "MN": 5.7, "SC": 5.3, "AL": 5.1, "LA": 4.6, "KY": 4.5, "OR": 4.2, "OK": 4.0,
    "CT": 3.6, "UT": 3.4, "IA": 3.2, "NV": 3.2, "AR": 3.0, "MS": 2.9, "KS": 2.9,
    "NM": 2.1, "NE": 2.0, "ID": 1.9, "WV": 1.8, "HI": 1.4, "NH": 1.4, "ME": 1.4,
    "MT": 1.1, "RI": 1.1, "DE": 1.0, "SD": 0.9, "ND": 0.8, "AK": 0.7, "DC": 0.7,
    "VT": 0.65, "WY": 0.58,
}  # fmt: skip
HIGH_INCOME_STATES = ("CA", "NY", "MA", "NJ", "CT", "MD", "WA", "DC", "CO", "VA")

# Share of each column written as an empty field.
MISSING_RATES = {
    "emp_length": 0.05,
    "annual_income": 0.01,
    "revol_util": 0.02,
    "dti": 0.003,
    "mort_acc": 0.05,
}

FIRST_NAMES = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David",
    "Elizabeth", "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas",
    "Sarah", "Charles", "Karen", "Christopher", "Lisa", "Daniel", "Nancy", "Matthew", "Betty",
    "Anthony", "Sandra", "Mark", "Margaret", "Donald", "Ashley", "Steven", "Kimberly", "Andrew",
    "Emily", "Paul", "Donna", "Joshua", "Michelle", "Kenneth", "Carol", "Kevin", "Amanda",
    "Brian", "Melissa", "George", "Deborah", "Timothy", "Stephanie", "Ronald", "Rebecca",
    "Jason", "Sharon", "Edward", "Laura", "Jeffrey", "Cynthia", "Ryan", "Dorothy", "Jacob",
    "Amy", "Gary", "Kathleen", "Nicholas", "Angela", "Eric", "Shirley", "Jonathan", "Emma",
    "Stephen", "Brenda", "Larry", "Pamela", "Justin", "Nicole", "Scott", "Anna", "Brandon",
    "Samantha", "Benjamin", "Katherine", "Samuel", "Christine", "Gregory", "Debra", "Alexander",
    "Rachel", "Patrick", "Carolyn", "Frank", "Janet", "Raymond", "Maria", "Jack", "Olivia",
    "Dennis", "Heather", "Jerry", "Helen", "Carlos", "Sofia", "Wei", "Mei", "Arjun", "Priya",
    "Ahmed", "Fatima", "Jamal", "Aaliyah", "Diego", "Lucia", "Hiroshi", "Yuki",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor",
    "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez",
    "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King", "Wright",
    "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker", "Hall",
    "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez", "Phillips", "Evans",
    "Turner", "Diaz", "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris",
    "Morales", "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson",
    "Bailey", "Reed", "Kelly", "Howard", "Ramos", "Kim", "Cox", "Ward", "Richardson", "Watson",
    "Brooks", "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes", "Price",
    "Alvarez", "Castillo", "Sanders", "Patel", "Myers", "Long", "Ross", "Foster", "Jimenez",
    "Chen", "Wang", "Singh", "Khan", "Tanaka", "Okafor", "Kowalski", "Novak", "Schmidt",
)  # fmt: skip
# Reserved domains, so no generated address can belong to anyone.
EMAIL_DOMAINS = ("example.com", "example.net", "example.org", "mail.example.com")

# National ids live in never-issued SSN areas (9xx) with groups 01-49, which are
# not ITINs either; a multiplicative map of the row number keeps them unique
# within any book of up to _NID_SPACE (~49 M) rows.
_NID_GROUPS, _NID_SERIALS = 49, 9999
_NID_SPACE = 100 * _NID_GROUPS * _NID_SERIALS
_NID_STEP = 30_280_637  # about 0.618 of the space, so neighbouring rows look unrelated
assert math.gcd(_NID_STEP, _NID_SPACE) == 1

BASE_INCOME = 60_000.0
BASE_AMOUNT = 11_000.0
DEFAULT_INTERCEPT = -2.62  # gives a bad rate of about 14 % at drift 0

# Column order of a generated book.
COLUMNS = (
    ID_COLUMN, "full_name", "email", "national_id", "phone", "age_band",
    "loan_amount", "term", "interest_rate", "installment", "grade", "emp_length",
    "home_ownership", "annual_income", "verification_status", "purpose", "addr_state",
    "dti", "delinq_2yrs", "fico_score", "credit_history_years", "inq_last_6mths",
    "open_acc", "pub_rec", "revol_bal", "revol_util", "total_acc", "mort_acc",
    TARGET_COLUMN,
)  # fmt: skip


# --------------------------------------------------------------------------- public API


def generate_loans(rows: int, seed: int = 0, drift: float = 0.0) -> pa.Table:
    """A book of `rows` applications as a pyarrow Table (call `.to_pandas()` for pandas).

    pyarrow keeps strings and nullable integers compact and writes CSV fast.
    """
    _check_generate_args(rows, seed, drift)
    return pa.concat_tables(_blocks(int(rows), int(seed), float(drift)))


def write_loans(
    table: pa.Table, out_dir: Path, shards: int = 1, prefix: str = "loans"
) -> list[Path]:
    """Write `table` as `prefix-00000.csv`, ... (header in each, nulls as empty fields).

    Rows are split as evenly as possible; earlier `prefix-NNNNN.csv` shards in
    `out_dir` that this call does not rewrite are removed, so a glob sees one book.
    """
    if not isinstance(table, pa.Table):
        raise TypeError(f"table must be a pyarrow.Table, got {type(table).__name__}")
    _check_rows(table.num_rows)
    _check_shards(shards, table.num_rows)
    _check_prefix(prefix)
    return _write_shards([table], table.num_rows, Path(out_dir), int(shards), prefix)


def generate_to_dir(
    rows: int,
    out_dir: Path,
    seed: int = 0,
    drift: float = 0.0,
    shards: int = 1,
    prefix: str = "loans",
) -> list[Path]:
    """Generate and write a book block by block; same files as write_loans(generate_loans())."""
    _check_generate_args(rows, seed, drift)
    _check_shards(shards, rows)
    _check_prefix(prefix)
    blocks = _blocks(int(rows), int(seed), float(drift))
    return _write_shards(blocks, int(rows), Path(out_dir), int(shards), prefix)


# --------------------------------------------------------------------------- validation


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _check_rows(rows: object) -> None:
    if not _is_int(rows) or not 1 <= rows <= MAX_ROWS:
        raise ValueError(f"rows must be an integer between 1 and {MAX_ROWS:,}, got {rows!r}")


def _check_generate_args(rows: object, seed: object, drift: object) -> None:
    _check_rows(rows)
    if not _is_int(seed) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be an integer between 0 and {MAX_SEED}, got {seed!r}")
    if (
        isinstance(drift, bool)
        or not isinstance(drift, int | float | np.integer | np.floating)
        or not math.isfinite(drift)
        or drift < 0
    ):
        raise ValueError(
            f"drift must be a finite number >= 0 (0 = no drift, 1 = strong), got {drift!r}"
        )


def _check_shards(shards: object, rows: int) -> None:
    if not _is_int(shards) or shards < 1:
        raise ValueError(f"shards must be an integer >= 1, got {shards!r}")
    if shards > rows:
        raise ValueError(f"shards ({shards}) must not exceed rows ({rows}): a shard would be empty")


def _check_prefix(prefix: object) -> None:
    if not isinstance(prefix, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", prefix):
        raise ValueError(f"prefix must be a plain file-name stem like 'loans', got {prefix!r}")


# --------------------------------------------------------------------------- writing

_WRITE_OPTIONS = pa_csv.WriteOptions(quoting_style="none", quoting_header="none")


def _shard_sizes(rows: int, shards: int) -> list[int]:
    base, extra = divmod(rows, shards)
    return [base + (1 if i < extra else 0) for i in range(shards)]


def _write_shards(
    tables: Iterable[pa.Table], rows: int, out_dir: Path, shards: int, prefix: str
) -> list[Path]:
    """Stream tables into `shards` CSV files, renamed into place only once all are written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{prefix}-{i:05d}.csv" for i in range(shards)]
    temps = [path.with_name(f".{path.name}.tmp") for path in paths]
    try:
        _stream_csv(tables, list(zip(temps, _shard_sizes(rows, shards), strict=True)))
        for tmp, path in zip(temps, paths, strict=True):
            os.replace(tmp, path)
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
    _remove_stale_shards(out_dir, prefix, set(paths))
    return paths


def _stream_csv(tables: Iterable[pa.Table], targets: list[tuple[Path, int]]) -> None:
    """Write consecutive rows of `tables` to each (path, row count) target in turn."""
    pending = iter(targets)
    writer: pa_csv.CSVWriter | None = None
    left = 0
    try:
        for table in tables:
            offset = 0
            while offset < table.num_rows:
                if left == 0:
                    if writer is not None:
                        writer.close()
                        writer = None
                    path, left = next(pending)
                    writer = pa_csv.CSVWriter(str(path), table.schema, write_options=_WRITE_OPTIONS)
                take = min(left, table.num_rows - offset)
                writer.write_table(table.slice(offset, take))
                offset += take
                left -= take
    finally:
        if writer is not None:
            writer.close()


def _remove_stale_shards(out_dir: Path, prefix: str, keep: set[Path]) -> None:
    pattern = re.compile(rf"{re.escape(prefix)}-\d{{5}}\.csv")
    for old in out_dir.iterdir():
        if pattern.fullmatch(old.name) and old not in keep and old.is_file():
            old.unlink()


# --------------------------------------------------------------------------- generation


class _Streams:
    """One independent random stream per (seed, block, name).

    Separate streams keep columns from shifting each other when drift changes
    how many draws a sampler takes, so the same seed gives the same applicants
    under any drift.
    """

    def __init__(self, seed: int, block: int) -> None:
        self._seed = seed
        self._block = block

    def __call__(self, name: str) -> np.random.Generator:
        return np.random.default_rng([self._seed, self._block, zlib.crc32(name.encode())])


def _blocks(rows: int, seed: int, drift: float) -> Iterator[pa.Table]:
    for block, start in enumerate(range(0, rows, BLOCK_ROWS)):
        n = min(BLOCK_ROWS, rows - start)
        yield _block(_Streams(seed, block), n, drift, seed * MAX_ROWS + start)


def _block(rs: _Streams, n: int, drift: float, first_id: int) -> pa.Table:
    c = _applicant(rs, n, drift)
    c.update(_credit_file(rs, n, drift, c))
    c.update(_loan(rs, n, drift, c))
    c["bad"] = _default(rs, n, drift, c)
    missing = {
        name: rs(f"missing:{name}").random(n) < rate
        for name, rate in MISSING_RATES.items()
        if name != "emp_length"  # drawn with the applicant: it feeds the risk model
    }
    missing["emp_length"] = c["emp_missing"]
    return _assemble(rs, n, c, missing, first_id)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _pick(u: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Categorical draw by inverse CDF from uniforms `u`."""
    cdf = np.cumsum(weights) / np.sum(weights)
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)


def _applicant(rs: _Streams, n: int, drift: float) -> dict[str, np.ndarray]:
    z = rs("z").standard_normal(n) - 0.1 * drift  # hidden creditworthiness
    age = np.minimum(18.0 + rs("age").gamma(3.2, 7.5, n), 90.0)
    state = _pick(rs("state").random(n), np.array(list(STATES.values())))
    high_cost = np.isin(state, [list(STATES).index(s) for s in HIGH_INCOME_STATES])
    emp = np.minimum(np.floor(rs("emp").exponential(3.0 + 0.2 * (age - 18.0))), 10.0)
    emp = np.minimum(emp, np.maximum(age - 17.0, 0.0)).astype(np.int64)
    log_income = (
        math.log(BASE_INCOME)
        + 0.20 * z
        - 0.00035 * (age - 48.0) ** 2
        + 0.025 * emp
        + 0.12 * high_cost
        - 0.15 * drift
        + rs("income").normal(0.0, 0.5, n)
    )
    income = np.clip(np.round(np.exp(log_income) / 100.0) * 100.0, 4_000.0, 3_000_000.0)
    hist = np.clip(age - 18.0 - rs("hist").exponential(4.0, n) + 0.8 * z, 0.5, 70.0)
    return {
        "z": z,
        "age": age,
        "state": state,
        "emp": emp,
        "emp_missing": rs("emp_missing").random(n) < MISSING_RATES["emp_length"],
        "income": income,
        "hist": np.round(hist, 1),
        "home": _home_ownership(rs, n, age, income),
    }


def _home_ownership(rs: _Streams, n: int, age: np.ndarray, income: np.ndarray) -> np.ndarray:
    other, own = 0.003, 0.11
    mortgage = (1.0 - other - own) * _sigmoid(
        -0.4 + 0.07 * (age - 38.0) + 1.3 * (np.log(income) - math.log(BASE_INCOME))
    )
    u = rs("home").random(n)
    return np.select(
        [u < other, u < other + own, u < other + own + mortgage],
        [HOME_OWNERSHIP.index("OTHER"), HOME_OWNERSHIP.index("OWN"), 0],
        HOME_OWNERSHIP.index("RENT"),
    )


def _credit_file(rs: _Streams, n: int, drift: float, c: dict) -> dict[str, np.ndarray]:
    z, hist, income = c["z"], c["hist"], c["income"]
    hist30 = np.minimum(hist, 30.0)
    fico = 695.0 + 36.0 * z + 0.5 * (hist30 - 15.0) + rs("fico").normal(0.0, 20.0, n)
    open_acc = np.minimum(1 + rs("open_acc").poisson(6.0 + 0.15 * hist30), 60)
    util = 1.08 * _sigmoid(-0.1 - 0.55 * z + 0.35 * drift + rs("util").normal(0.0, 0.9, n))
    limit = income * np.exp(rs("limit").normal(math.log(0.3), 0.55, n))
    mortgage = c["home"] == 0
    older = np.maximum(c["age"] - 30.0, 0.0)
    mort_lam = np.where(mortgage, 0.8 + 0.03 * older, 0.25 + 0.01 * older)
    return {
        "fico": np.clip(np.round(fico), 560, 850).astype(np.int64),
        "delinq": np.minimum(rs("delinq").poisson(np.exp(-1.9 - 0.55 * z)), 20),
        "pub_rec": np.minimum(rs("pub_rec").poisson(np.exp(-2.3 - 0.35 * z)), 15),
        "inq": np.minimum(rs("inq").poisson(np.exp(-0.5 - 0.25 * z + 0.15 * drift)), 15),
        "open_acc": open_acc,
        "total_acc": np.minimum(open_acc + rs("total_acc").poisson(3.0 + 0.5 * hist), 150),
        "util": np.round(util * 100.0, 1),
        "revol_bal": np.minimum(np.round(limit * util), 2_000_000).astype(np.int64),
        "dti": np.minimum(
            np.round(rs("dti").gamma(4.0, 4.5 * np.exp(-0.1 * z + 0.2 * drift)), 2), 60.0
        ),
        "mort_acc": np.minimum(rs("mort_acc").poisson(mort_lam) + mortgage, 20),
    }


def _purpose_weights(drift: float) -> np.ndarray:
    share = np.array([p[0] for p in PURPOSES.values()])
    lift = np.array([p[1] for p in PURPOSES.values()])
    return share * np.maximum(1.0 + lift * drift, 0.05)


def _loan(rs: _Streams, n: int, drift: float, c: dict) -> dict[str, np.ndarray]:
    purpose = _pick(rs("purpose").random(n), _purpose_weights(drift))
    amount_shift = np.array([p[2] for p in PURPOSES.values()])[purpose]
    log_amount = (
        math.log(BASE_AMOUNT)
        + 0.5 * (np.log(c["income"]) - math.log(BASE_INCOME))
        + amount_shift
        + rs("amount").normal(0.0, 0.55, n)
    )
    amount = np.clip(np.round(np.exp(log_amount) / 25.0) * 25.0, 1_000.0, 40_000.0)
    long_term = rs("term").random(n) < _sigmoid(
        -1.1 + 1.5 * (np.log(amount) - math.log(15_000.0)) + 0.2 * drift
    )
    grade = _grade(rs, n, c["z"])
    rate = (
        np.array(GRADE_RATES)[grade]
        + 0.9 * long_term
        + 1.8 * drift
        + rs("rate").normal(0.0, 0.9, n)
    )
    rate = np.round(np.clip(rate, 5.31, 35.99), 2)
    months = np.where(long_term, 60.0, 36.0)
    monthly = rate / 1200.0
    installment = np.round(amount * monthly / (1.0 - (1.0 + monthly) ** -months), 2)
    return {
        "purpose": purpose,
        "amount": amount.astype(np.int64),
        "long_term": long_term,
        "grade": grade,
        "rate": rate,
        "installment": installment,
        "verification": _verification(rs, n, amount, c["income"], grade),
    }


def _grade(rs: _Streams, n: int, z: np.ndarray) -> np.ndarray:
    """The lender's grade: hidden creditworthiness seen through underwriting noise."""
    noise_sd = 0.6
    score = (z + rs("grade").normal(0.0, noise_sd, n)) / math.sqrt(1.0 + noise_sd**2)
    worst_first = np.cumsum(GRADE_SHARES[::-1])[:-1]
    cuts = [NormalDist().inv_cdf(q) for q in worst_first]
    return len(GRADES) - 1 - np.searchsorted(cuts, score)


def _verification(
    rs: _Streams, n: int, amount: np.ndarray, income: np.ndarray, grade: np.ndarray
) -> np.ndarray:
    score = (
        2.5 * (amount / income - 0.2)
        + 0.25 * (grade - 2)
        + 0.4 * (np.log(amount) - math.log(BASE_AMOUNT))
        + rs("verification").logistic(0.0, 1.0, n)
    )
    return np.digitize(score, [-0.6, 0.7])


def _default(rs: _Streams, n: int, drift: float, c: dict) -> np.ndarray:
    """Who defaults: a logistic of features, hidden creditworthiness and unseen shocks."""
    util = c["util"] / 100.0
    pti = c["installment"] * 12.0 / c["income"]
    emp = np.where(c["emp_missing"], 0, c["emp"])
    purpose_risk = np.array([p[3] for p in PURPOSES.values()])[c["purpose"]]
    logit = (
        DEFAULT_INTERCEPT
        - 0.9 * c["z"]
        + 0.02 * (c["dti"] - 18.0)
        + 0.05 * np.maximum(c["dti"] - 30.0, 0.0)
        + 0.9 * (util - 0.5)
        + 1.2 * np.maximum(util - 0.9, 0.0)
        + 0.10 * c["inq"]
        + 0.30 * np.minimum(c["delinq"], 3)
        + 0.25 * np.minimum(c["pub_rec"], 2)
        + 0.35 * c["long_term"]
        + 1.5 * pti
        + 8.0 * np.maximum(pti - 0.10, 0.0)
        - 0.2 * (np.log(c["income"]) - math.log(BASE_INCOME))
        - 0.02 * emp
        + 0.25 * c["emp_missing"]
        - 0.15 * (c["mort_acc"] > 0)
        + purpose_risk
        - 0.015 * np.minimum(c["hist"], 25.0)
        + 0.1 * drift
        + rs("shock").normal(0.0, 0.6, n)
    )
    return rs("default").random(n) < _sigmoid(logit)


# --------------------------------------------------------------------------- columns


def _text(values: tuple[str, ...], index: np.ndarray) -> pa.Array:
    return pa.array(values, pa.string()).take(pa.array(index, pa.int32()))


def _digits(numbers: np.ndarray, width: int) -> pa.Array:
    return pc.utf8_lpad(pc.cast(pa.array(numbers, pa.int64()), pa.string()), width, "0")


def _join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _nullable(values: np.ndarray, missing: np.ndarray, kind: pa.DataType) -> pa.Array:
    return pa.array(values, kind, mask=missing)


def _pii(rs: _Streams, n: int, first_id: int) -> dict[str, pa.Array]:
    first = _text(FIRST_NAMES, rs("first_name").integers(0, len(FIRST_NAMES), n))
    last = _text(LAST_NAMES, rs("last_name").integers(0, len(LAST_NAMES), n))
    suffix = rs("email_number").integers(0, 1000, n)
    has_suffix = rs("email_suffix").random(n) < 0.7
    suffix_text = pc.if_else(pa.array(has_suffix), _digits(suffix, 1), pa.scalar(""))
    domain = _text(EMAIL_DOMAINS, rs("email_domain").integers(0, len(EMAIL_DOMAINS), n))
    email = pc.utf8_lower(_join(first, ".", last, suffix_text, "@", domain))
    # reduce first: seed-sized ids times the step would overflow int64
    slot = (first_id % _NID_SPACE + np.arange(n, dtype=np.int64)) % _NID_SPACE
    nid = (_NID_STEP * slot) % _NID_SPACE
    nid_area, rest = np.divmod(nid, _NID_GROUPS * _NID_SERIALS)
    nid_group, nid_serial = np.divmod(rest, _NID_SERIALS)
    phone_area = rs("phone_area").integers(201, 990, n)
    phone_line = rs("phone_line").integers(100, 200, n)  # 555-0100..0199 is fictional
    return {
        "full_name": _join(first, " ", last),
        "email": email,
        "national_id": _join(
            _digits(900 + nid_area, 3),
            "-",
            _digits(nid_group + 1, 2),
            "-",
            _digits(nid_serial + 1, 4),
        ),
        "phone": _join(_digits(phone_area, 3), "-555-", _digits(phone_line, 4)),
    }


def _assemble(
    rs: _Streams, n: int, c: dict, missing: dict[str, np.ndarray], first_id: int
) -> pa.Table:
    int64, float64 = pa.int64(), pa.float64()
    ids = _join("APP-", _digits(first_id + 1 + np.arange(n, dtype=np.int64), 12))
    purposes = tuple(PURPOSES)
    columns: dict[str, pa.Array] = {
        ID_COLUMN: ids,
        **_pii(rs, n, first_id),
        "age_band": _text(AGE_BANDS, np.digitize(c["age"], AGE_BAND_EDGES)),
        "loan_amount": pa.array(c["amount"], int64),
        "term": _text(TERMS, c["long_term"].astype(np.int8)),
        "interest_rate": pa.array(c["rate"], float64),
        "installment": pa.array(c["installment"], float64),
        "grade": _text(GRADES, c["grade"]),
        "emp_length": _nullable(c["emp"], missing["emp_length"], int64),
        "home_ownership": _text(HOME_OWNERSHIP, c["home"]),
        "annual_income": _nullable(c["income"].astype(np.int64), missing["annual_income"], int64),
        "verification_status": _text(VERIFICATION, c["verification"]),
        "purpose": _text(purposes, c["purpose"]),
        "addr_state": _text(tuple(STATES), c["state"]),
        "dti": _nullable(c["dti"], missing["dti"], float64),
        "delinq_2yrs": pa.array(c["delinq"], int64),
        "fico_score": pa.array(c["fico"], int64),
        "credit_history_years": pa.array(c["hist"], float64),
        "inq_last_6mths": pa.array(c["inq"], int64),
        "open_acc": pa.array(c["open_acc"], int64),
        "pub_rec": pa.array(c["pub_rec"], int64),
        # no revolving line: utilisation is undefined and the balance is zero
        "revol_bal": pa.array(np.where(missing["revol_util"], 0, c["revol_bal"]), int64),
        "revol_util": _nullable(c["util"], missing["revol_util"], float64),
        "total_acc": pa.array(c["total_acc"], int64),
        "mort_acc": _nullable(c["mort_acc"], missing["mort_acc"], int64),
        TARGET_COLUMN: _text(("good", "bad"), c["bad"].astype(np.int8)),
    }
    return pa.table([columns[name] for name in COLUMNS], names=list(COLUMNS))
