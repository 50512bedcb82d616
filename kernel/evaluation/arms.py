"""Champion/challenger arms: a stable, seeded assignment of every account to an arm.

Configuration (docs/evaluation.md, "Arms")::

    [experiment]
    name = "early-call-2026q4"      # recorded in every audit record's meta
    seed = "2026q4"                 # the hash's salt: changing it reshuffles every account
    [experiment.arms]               # shares: contiguous slot ranges, in the order listed
    CHAMPION = 0.80
    CHALLENGER = 0.15
    HOLDOUT = 0.05

or with explicit slot ranges ``[start, end)`` out of :data:`SLOTS` (10,000)::

    [experiment.arms]
    CHAMPION = [0, 8000]
    CHALLENGER = [8000, 9500]
    HOLDOUT = [9500, 10000]

An account's **slot** is a 64-bit FNV-1a hash of the seed, a zero byte and the account id's
UTF-8 bytes, mixed by MurmurHash3's 64-bit finaliser, scaled to ``0 … 9,999`` (``(h >> 32) ×
10,000 >> 32``). It depends on nothing but the seed and the id: the same in every run, process
and machine, whatever the batch, its order or the other accounts. An arm owns a range of
slots; a slot no arm owns is arm ``NONE`` (not in the experiment). Adding an arm gives it
slots no arm owned (with shares: list it last and keep the shares of the others), so no
other account changes arm; taking slots from an arm (explicit ranges) moves only the accounts
of those slots.

Arm names are the members of the contract's ``experiment_arm`` enumeration
(:data:`kernel.schema.ENUMS`), so a ruleset reads the arm like any enum input
(``experiment_arm == CHALLENGER``) and the compiled kernel does not depend on the
configuration.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pyarrow as pa

from ..errors import PostloanError
from ..schema import ENUMS

__all__ = ["SLOTS", "ARMS", "NONE", "Experiment", "slots", "slot_of", "ExperimentError"]

#: how many slots the hash spreads accounts over
SLOTS = 10_000
#: the arm names a configuration may use (the contract's enum), NONE first
ARMS: tuple[str, ...] = ENUMS["experiment_arm"]
NONE = "NONE"

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK = (1 << 64) - 1


class ExperimentError(PostloanError):
    """A bad ``[experiment]`` configuration; the message names the key."""


def _fmix(h: int) -> int:
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & _MASK
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & _MASK
    return h ^ (h >> 33)


def _prefix(seed: str) -> int:
    """FNV-1a state after the seed's bytes and the separating zero byte."""
    h = _FNV_OFFSET
    for b in seed.encode("utf-8") + b"\0":
        h = ((h ^ b) * _FNV_PRIME) & _MASK
    return h


def slot_of(account_id: str, seed: str) -> int:
    """The slot (0 … SLOTS − 1) of one account: plain Python, the one-account path."""
    h = _prefix(seed)
    for b in account_id.encode("utf-8"):
        h = ((h ^ b) * _FNV_PRIME) & _MASK
    return ((_fmix(h) >> 32) * SLOTS) >> 32


def slots(account_ids, seed: str) -> np.ndarray:
    """The slots of many accounts (int64), the same numbers as :func:`slot_of`, computed over
    the Arrow string buffers with NumPy (one pass per byte position, no Python per account).
    ``account_ids``: an Arrow string array (or chunked array), or a sequence of str. A null
    id raises :class:`ExperimentError`."""
    arr = account_ids
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if not isinstance(arr, pa.Array):
        arr = pa.array(np.asarray(arr, dtype=object), pa.string())
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.string())
    if not pa.types.is_string(arr.type):
        raise ExperimentError(f"account_id: expected text, got {arr.type}")
    n = len(arr)
    if arr.null_count:
        raise ExperimentError("account_id: a null account id has no arm")
    if n == 0:
        return np.zeros(0, np.int64)
    _, offsets_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(offsets_buf, np.int32, n + 1, arr.offset * 4)
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.zeros(1, np.uint8)
    if data.size == 0:
        data = np.zeros(1, np.uint8)
    start, length = offsets[:-1].astype(np.int64), np.diff(offsets).astype(np.int64)
    h = np.full(n, _prefix(seed), np.uint64)
    prime = np.uint64(_FNV_PRIME)
    with np.errstate(over="ignore"):
        for j in range(int(length.max()) if n else 0):
            live = length > j
            byte = data[np.minimum(start + j, data.size - 1)].astype(np.uint64)
            h = np.where(live, (h ^ byte) * prime, h)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xC4CEB9FE1A85EC53)
        h ^= h >> np.uint64(33)
        return (((h >> np.uint64(32)) * np.uint64(SLOTS)) >> np.uint64(32)).astype(np.int64)


@dataclass(frozen=True)
class Experiment:
    """A configured experiment: its name, seed and the slot range ``[start, end)`` of each
    arm. :meth:`from_config` reads ``[experiment]``; :meth:`assign` gives arms."""

    name: str
    seed: str
    ranges: tuple[tuple[str, int, int], ...]     # (arm, start, end), ordered by start

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> "Experiment | None":
        """The experiment of a configuration (None when it has no ``[experiment]`` table).
        Raises :class:`ExperimentError` naming the key for a bad one."""
        section = (config or {}).get("experiment")
        if section is None:
            return None
        source = (config or {}).get("_source") or "configuration"
        where = f"{source}: [experiment]"
        if not isinstance(section, Mapping):
            raise ExperimentError(f"{where} must be a table")
        unknown = sorted(set(section) - {"name", "seed", "arms"})
        if unknown:
            raise ExperimentError(f"{where} {unknown[0]!r}: unknown key (keys: arms, name, seed)")
        name = section.get("name", "experiment")
        seed = section.get("seed")
        if not isinstance(name, str) or not name or len(name) > 128:
            raise ExperimentError(f"{where} name must be a text of 1 to 128 characters")
        if seed is None:
            raise ExperimentError(f"{where} seed is required (a text or a number: the salt of the account hash)")
        if isinstance(seed, bool) or not isinstance(seed, (str, int)):
            raise ExperimentError(f"{where} seed must be a text or a whole number")
        arms = section.get("arms")
        if not isinstance(arms, Mapping) or not arms:
            raise ExperimentError(f"{where}.arms must be a table naming at least one arm "
                                  f"({', '.join(a for a in ARMS if a != NONE)})")
        return cls(name, str(seed), _ranges(arms, f"{source}: [experiment.arms]"))

    @property
    def arms(self) -> tuple[str, ...]:
        """The configured arms, in slot order."""
        return tuple(r[0] for r in self.ranges)

    def share(self, arm: str) -> float:
        return sum(end - start for a, start, end in self.ranges if a == arm) / SLOTS

    def arm_of_slot(self) -> np.ndarray:
        """int8 code (in :data:`ARMS`) of every slot."""
        table = np.zeros(SLOTS, np.int8)
        for arm, start, end in self.ranges:
            table[start:end] = ARMS.index(arm)
        return table

    def assign(self, account_ids) -> np.ndarray:
        """int8 codes in :data:`ARMS` of every account (see :func:`slots`)."""
        return self._table[slots(account_ids, self.seed)]

    def assign_one(self, account_id: str | None) -> str:
        """The arm name of one account (NONE for a missing id)."""
        if account_id is None:
            return NONE
        return ARMS[int(self._table[slot_of(str(account_id), self.seed)])]

    def names(self, account_ids) -> pa.DictionaryArray:
        """The arms of ``account_ids`` as the contract's enum column (dictionary of ARMS)."""
        return pa.DictionaryArray.from_arrays(pa.array(self.assign(account_ids), pa.int8()), pa.array(ARMS))

    def describe(self) -> dict:
        """What the audit log's meta records of the experiment."""
        return {"name": self.name, "seed": self.seed,
                "arms": {arm: [start, end] for arm, start, end in self.ranges}}

    @property
    def _table(self) -> np.ndarray:
        table = self.__dict__.get("_slot_table")
        if table is None:
            table = self.arm_of_slot()
            object.__setattr__(self, "_slot_table", table)
        return table


def _ranges(arms: Mapping[str, Any], where: str) -> tuple[tuple[str, int, int], ...]:
    names = list(arms)
    for arm in names:
        if arm not in ARMS or arm == NONE:
            raise ExperimentError(f"{where} {arm!r} is not an arm name (names: "
                                  f"{', '.join(a for a in ARMS if a != NONE)})")
    explicit = [isinstance(v, list) for v in arms.values()]
    if any(explicit) and not all(explicit):
        raise ExperimentError(f"{where}: give every arm a share or every arm a slot range [start, end), not both")
    ranges = []
    if all(explicit):
        for arm, value in arms.items():
            if (len(value) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) for x in value)
                    or not 0 <= value[0] < value[1] <= SLOTS):
                raise ExperimentError(f"{where} {arm}: a slot range is [start, end) with 0 <= start < end <= {SLOTS}")
            ranges.append((arm, value[0], value[1]))
        ranges.sort(key=lambda r: r[1])
        for (a, _, end), (b, start, _) in zip(ranges, ranges[1:]):
            if start < end:
                raise ExperimentError(f"{where}: the slot ranges of {a} and {b} overlap")
        return tuple(ranges)
    start = 0
    for arm, value in arms.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not 0 < value <= 1:
            raise ExperimentError(f"{where} {arm}: a share is a number in (0, 1], got {value!r}")
        width = round(value * SLOTS)
        if abs(width - value * SLOTS) > 1e-6 or width == 0:
            raise ExperimentError(f"{where} {arm}: a share is a whole number of slots out of {SLOTS} "
                                  f"(a multiple of 0.0001), got {value!r}")
        if start + width > SLOTS:
            raise ExperimentError(f"{where}: the shares add up to more than 1")
        ranges.append((arm, start, start + width))
        start += width
    return tuple(ranges)


def arm_codes(names: Sequence[str | None]) -> np.ndarray:
    """int8 codes in :data:`ARMS` of arm names (unknown or None: NONE)."""
    index = {a: i for i, a in enumerate(ARMS)}
    return np.array([index.get(n, 0) for n in names], np.int8)


#: arm names by code, as an object array (decision columns)
ARM_NAMES = np.array(ARMS, dtype=object)
_STR_NAMES = np.array(ARMS, dtype=str)
_ENUM_VALUES = pa.array(ARMS, pa.string())


def add_arm(joined, experiment: "Experiment | None"):
    """``joined`` (a decision's input: an Arrow table or batch, a mapping of NumPy columns, or
    one record) with the input column ``experiment_arm``: each account's arm, NONE for all
    without an experiment. A given ``experiment_arm`` is replaced: the configuration decides.
    A record or a mapping gets the column in place (the pipeline's are its own copies)."""
    from ..hookspecs import Record
    if isinstance(joined, Record) or (isinstance(joined, dict) and not _is_columns(joined)):
        return add_arm_record(joined, experiment)
    if isinstance(joined, Mapping):
        n = len(next(iter(joined.values()))) if joined else 0
        codes = np.zeros(n, np.int8) if experiment is None else experiment.assign(joined["account_id"])
        joined["experiment_arm"] = _STR_NAMES[codes]
        return joined
    table = joined if isinstance(joined, pa.Table) else pa.Table.from_batches([joined])
    n = table.num_rows
    codes = np.zeros(n, np.int8) if experiment is None else experiment.assign(table.column("account_id"))
    column = pa.DictionaryArray.from_arrays(pa.array(codes, pa.int8()), _ENUM_VALUES)
    names = table.schema.names
    if "experiment_arm" in names:
        return table.set_column(names.index("experiment_arm"), "experiment_arm", column)
    return table.append_column("experiment_arm", column)


def add_arm_record(record: dict, experiment: "Experiment | None") -> dict:
    """:func:`add_arm` for one record (a :class:`~kernel.hookspecs.Record` or a dict of
    scalars): its arm, in place."""
    record["experiment_arm"] = NONE if experiment is None else experiment.assign_one(record.get("account_id"))
    return record


def _is_columns(mapping: Mapping) -> bool:
    value = next(iter(mapping.values()), None)
    return isinstance(value, (np.ndarray, pa.Array, pa.ChunkedArray, list))


def decision_arms(batch, experiment: "Experiment"):
    """The decision column ``experiment.arm`` of a pipeline batch: its input's arms (or, when
    the input has none, the experiment's assignment of its account ids), as names."""
    if batch.has("experiment_arm"):
        codes = batch.enum("experiment_arm")
    else:
        codes = experiment.assign(batch.strings("account_id"))
    return ARM_NAMES[np.maximum(codes, 0)]
