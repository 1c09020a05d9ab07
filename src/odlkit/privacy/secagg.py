"""Secure aggregation by pairwise additive masks (Bonawitz et al. 2017, simplified).

Every pair of clients (i, j) shares a seed ``s_ij`` (in the real protocol from a
Diffie-Hellman key agreement; here drawn by :func:`pairwise_seeds`, which plays that role).
Updates are encoded as fixed-point integers in the ring Z_{2^32}; client i sends

    y_i = enc(x_i) + sum_{j > i} PRG(s_ij) - sum_{j < i} PRG(s_ij)   (mod 2^32)

Each mask appears once with + and once with -, so the masks cancel in the sum and the
server decodes the *exact* sum of the encoded updates, provided that sum fits the ring: with
``n`` clients each encoded value must satisfy ``n * |round(x 2^f)| <= 2^31 - 1`` (each client can
check that on its own; after masking nobody can see an overflow), and :func:`encode` refuses
anything else instead of letting the sum wrap around. A single ``y_i`` is the encoding plus
a uniformly random ring element, hence itself uniform on the ring and independent of ``x_i``
(a one-time pad), as long as at least one other client's seed stays secret.

Dropouts: if client d never sends ``y_d``, its masks with the survivors do not cancel.
The survivors reveal their seeds shared with d (in the real protocol the server
reconstructs them from Shamir shares; the self-mask that protects a late client is left
out here) and the server subtracts the dangling masks: :meth:`SecureAggregator.unmask_sum`.
"""

from __future__ import annotations

import numpy as np

RING_BITS = 32
MOD = 1 << RING_BITS


def encode(x, frac_bits: int = 16, n_summands: int = 1):
    """Fixed-point encode floats into Z_{2^32} (two's complement for negatives).

    ``n_summands`` is how many such encodings will be added up (the number of clients): each
    value is refused unless ``n_summands`` of them still sum inside the signed 32-bit range, so
    the decoded sum is exact and never wraps around.
    """
    x = np.asarray(x, dtype=np.float64)
    if n_summands < 1:
        raise ValueError(f"n_summands must be >= 1 (got {n_summands})")
    if not np.all(np.isfinite(x)):
        raise ValueError("update contains NaN or inf: it cannot be encoded")
    scaled = np.round(x * (1 << frac_bits))
    max_int = (MOD // 2 - 1) // n_summands  # n_summands * max_int <= 2^31 - 1
    if np.any(np.abs(scaled) > max_int):
        limit = max_int / (1 << frac_bits)
        worst = float(np.max(np.abs(x)))
        where = f"the sum of {n_summands} updates" if n_summands > 1 else "the value"
        raise ValueError(
            f"value out of range for {frac_bits} fractional bits: {where} must stay below 2^{RING_BITS - 1 - frac_bits}"
            f" in magnitude, so each |x| must be <= {limit:g} (got {worst:g}); clip the update or lower frac_bits"
        )
    return scaled.astype(np.int64).astype(np.uint64) % MOD


def decode(v, frac_bits: int = 16):
    """Inverse of :func:`encode` (values read as signed 32-bit)."""
    v = np.asarray(v, dtype=np.uint64) % MOD
    signed = v.astype(np.int64)
    signed = np.where(signed >= MOD // 2, signed - MOD, signed)
    return signed.astype(np.float64) / (1 << frac_bits)


def prg(seed: int, size: int):
    """The pseudo-random mask stream of one pair: ``size`` uniform elements of Z_{2^32}."""
    return np.random.default_rng(seed).integers(0, MOD, size=size, dtype=np.uint64)


def pairwise_seeds(n_clients: int, seed: int = 0) -> dict:
    """``{(i, j): s_ij}`` for i < j: the shared secrets (stand-in for a key agreement)."""
    rng = np.random.default_rng(seed)
    return {(i, j): int(rng.integers(0, 2**63)) for i in range(n_clients) for j in range(i + 1, n_clients)}


def mask_update(i: int, update, seeds: dict, n_clients: int, frac_bits: int = 16):
    """What client ``i`` sends: its encoded update plus its pairwise masks (uint64 holding Z_{2^32})."""
    enc = encode(update, frac_bits, n_summands=n_clients)
    y = enc.copy()
    for j in range(n_clients):
        if j == i:
            continue
        m = prg(seeds[(min(i, j), max(i, j))], enc.size).reshape(enc.shape)
        y = (y + m) % MOD if i < j else (y + MOD - m) % MOD
    return y


class SecureAggregator:
    """The server side: sums masked updates and removes the masks of dropped clients."""

    def __init__(self, n_clients: int, seed: int = 0, frac_bits: int = 16):
        if n_clients < 2:
            raise ValueError("secure aggregation needs at least 2 clients (one client's sum is its update)")
        self.n_clients = n_clients
        self.frac_bits = frac_bits
        self.seeds = pairwise_seeds(n_clients, seed)  # each client only knows its own pairs

    def client_message(self, i: int, update):
        return mask_update(i, update, self.seeds, self.n_clients, self.frac_bits)

    def reveal_seeds_with(self, dropped: list[int], survivors: list[int]) -> dict:
        """Seeds the survivors disclose for their pairs with dropped clients (never survivor-survivor)."""
        return {
            (min(s, d), max(s, d)): self.seeds[(min(s, d), max(s, d))] for s in survivors for d in dropped
        }

    def unmask_sum(self, messages: dict):
        """``messages = {client_id: masked vector}`` from the survivors; returns the float sum of their updates."""
        if not messages:
            raise ValueError("no client messages: nothing to aggregate")
        survivors = sorted(messages)
        if len(survivors) < 2:
            raise ValueError("fewer than 2 survivors: revealing masks would expose a single update; abort the round")
        dropped = [d for d in range(self.n_clients) if d not in messages]
        total = np.zeros_like(next(iter(messages.values())), dtype=np.uint64)
        for y in messages.values():
            total = (total + np.asarray(y, dtype=np.uint64)) % MOD
        for (a, _b), s in self.reveal_seeds_with(dropped, survivors).items():
            m = prg(s, total.size).reshape(total.shape)
            # survivor a < dropped b added +m ; survivor b > dropped a added -m
            total = (total + MOD - m) % MOD if a in messages else (total + m) % MOD
        return decode(total, self.frac_bits)

    def aggregate(self, updates, dropped=()):
        """Convenience for simulation: mask every surviving client's row of ``updates`` and unmask the sum."""
        updates = np.asarray(updates)
        if updates.shape[0] != self.n_clients:
            raise ValueError(f"expected {self.n_clients} updates, got {updates.shape[0]}")
        msgs = {i: self.client_message(i, updates[i]) for i in range(self.n_clients) if i not in set(dropped)}
        return self.unmask_sum(msgs)
