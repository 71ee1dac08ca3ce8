"""Stable sampling and privacy-safe command keys.

Sampling must give the same answer for a command in every process, pod and restart, and be
monotone in the rate (a command sampled at 1% stays sampled at 5% and 10%), so it is a keyed
BLAKE2b hash of (corridor, command_id) mapped to [0, 1) and compared with the rate. Python's
``hash()`` is salted per process (PYTHONHASHSEED) and would not do.

The sampling key is a fixed, public constant on purpose: every pod must agree without sharing
a secret, and a generated per-host key would break that. It is not a secret and need not be:
the sampling decision is not an identifier, and the risk log never links it to an id.

``command_key`` is what the risk log stores instead of the id: a hash under a separate
*secret* key, so the log can join records of one command without ever holding the id, and
nobody without the key can test guesses against it. There is no built-in key. The caller
gives the key (``CorridorStack.from_env`` resolves it from the ``Environment`` it was given:
``PARTIAL_TRUST_HASH_KEY``, else a key file next to the risk log; see
``partial_trust.middleware.hash_key``); this module never reads the environment itself.
"""

from __future__ import annotations

import functools
import hashlib

from partial_trust.middleware.hash_key import HashKey, ephemeral_key

_SAMPLING_KEY = b"partial-trust-corridor/sampling/v1"
_SCALE = float(1 << 64)
#: Keying BLAKE2b hashes the key block; ``copy()`` of a hasher that already did it is ~0.3 µs
#: cheaper per call on the hot path and gives the very same digest.
_SAMPLER = hashlib.blake2b(key=_SAMPLING_KEY, digest_size=8)


@functools.lru_cache(maxsize=64)
def _corridor_sampler(corridor: str) -> hashlib.blake2b:
    """The keyed hasher with ``corridor`` and its separator already fed: hashing is streaming,
    so a copy of it fed the id gives the digest of the whole ``corridor\x00id``."""
    hasher = _SAMPLER.copy()
    hasher.update(f"{corridor}\x00".encode())
    return hasher


def sample_point(corridor: str, command_id: str) -> float:
    """Where this command falls in [0, 1) for this corridor; the same everywhere, always."""
    hasher = _corridor_sampler(corridor).copy()
    hasher.update(command_id.encode())
    return int.from_bytes(hasher.digest(), "big") / _SCALE


def is_sampled(corridor: str, command_id: str, rate: float) -> bool:
    """Sampled iff the command's point lies below the rate: monotone in the rate."""
    if rate <= 0.0:
        return False
    if rate >= 1.0:
        return True
    return sample_point(corridor, command_id) < rate


@functools.cache
def process_key() -> HashKey:
    """One random key for every keyer built without a key in this process, made (and warned
    about) once: records of one process join, records of two processes or restarts do not."""
    return ephemeral_key("no key was given to CommandKeyer")


class CommandKeyer:
    """Turns command ids into short keyed hashes for the risk log.

    ``key`` is bytes (tests, tools), a resolved ``HashKey`` (``CorridorStack``: its
    ``Environment`` or the key file), or ``None``: this process's random key
    (``process_key``), with one warning per process. A library user who builds an engine by
    hand never gets a guessable key, and no hidden read of the environment happens here.
    """

    def __init__(self, key: bytes | HashKey | None = None) -> None:
        if key is None:
            key = process_key()
        elif isinstance(key, bytes):
            key = HashKey(key, "given")
        self.origin = key
        self._hasher = hashlib.blake2b(key=key.key, digest_size=12)  # pre-keyed, see _SAMPLER

    def status(self) -> dict[str, str]:
        """Where the key comes from, for ``/health``; never the key."""
        return self.origin.status()

    def __call__(self, command_id: str) -> str:
        hasher = self._hasher.copy()
        hasher.update(command_id.encode())
        return hasher.hexdigest()
