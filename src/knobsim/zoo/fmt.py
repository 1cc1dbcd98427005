"""Numbers as the zoo prints them: counts (117M), bytes (1.5 GB), FLOP, durations, rates."""

from __future__ import annotations

# Human-readable numbers (pure; the CLI prints them)


def fmt_count(n: float) -> str:
    """124.4M, 8.03B, 405.9B, 1.76T; plain below a thousand."""
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= 0.99995 * scale:  # 999.96M prints as 1.00B, not 1000.0M
            x = n / scale
            return f"{x:.2f}{unit}" if x < 10 else f"{x:.1f}{unit}"
    return f"{n:g}"


def fmt_bytes(b: float) -> str:
    """Decimal units (1 GB = 10^9 bytes), as disk and GPU makers count."""
    for unit, scale in (("PB", 1e15), ("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if b >= 0.9995 * scale:  # what would print as 1000 of a unit is 1.00 of the next
            x = b / scale
            # three significant digits, zeros kept so columns line up: 2.00 GB, 10.0 GB
            return f"{x:#.3g}".rstrip(".") + f" {unit}" if x < 1000 else f"{x:.0f} {unit}"
    return f"{b:.0f} B"


def fmt_flop(f: float) -> str:
    return f"{f:.2e}".replace("e+", "e")


_YEAR = 365.25 * 24 * 3600


def fmt_duration(s: float, short: bool = False) -> str:
    """45 s, 12 min, 3.4 h, 5.2 days, 3.2 years, 1,950 years, 4.5 million years.

    ``short`` (for narrow table columns) writes millions and billions of years as
    4.5M years and 1.2B years.
    """
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        return f"{s / 60:.0f} min"
    if s < 86400:
        return f"{s / 3600:.1f} h"
    if s < _YEAR:
        return f"{s / 86400:.1f} days" if s < 10 * 86400 else f"{s / 86400:.0f} days"
    y = s / _YEAR
    if y < 10:
        return f"{y:.1f} years"
    y3 = round(y, 3 - len(str(int(y))))  # three significant digits: 1,950 / 51,000 years
    if y3 < 1e6:
        return f"{y3:,.0f} years"
    for word, abbr, scale in (("billion", "B", 1e9), ("million", "M", 1e6)):
        if y >= scale:
            return f"{y / scale:.1f}{abbr} years" if short else f"{y / scale:.1f} {word} years"
    raise AssertionError("unreachable")


def fmt_tokens(d: float | None) -> str:
    """300B, 15.6T, 2.33B: three significant digits, no trailing zeros."""
    if d is None:
        return "not published"
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if d >= scale:
            return f"{d / scale:.3g}{unit}"
    return f"{d:.3g}"


def fmt_rate(flops: float) -> str:
    """487 GFLOP/s."""
    for unit, scale in (("PFLOP/s", 1e15), ("TFLOP/s", 1e12), ("GFLOP/s", 1e9),
                        ("MFLOP/s", 1e6)):
        if flops >= scale:
            return f"{flops / scale:.3g} {unit}"
    return f"{flops:.3g} FLOP/s"


def fmt_mfu(mfu: float) -> str:
    """A fraction of peak as a percentage, two significant digits: 40%, 13%, 7.4%, 0.52%."""
    pct = 100 * mfu
    return f"{pct:.0f}%" if pct >= 9.95 else f"{pct:.2g}%"


def fmt_relative(x: float) -> str:
    """+6.4%, -0.01%: one decimal, two when that would round to zero."""
    return f"{x:+.1%}" if abs(x) >= 0.001 else f"{x:+.2%}"
