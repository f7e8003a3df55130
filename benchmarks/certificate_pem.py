"""Benchmark of the certificate handoff's PEM scan, against linear growth.

The scan of plugins/module_utils/mailu_certificate.py reads every source and installed
file; it used to be quadratic (a regular expression looking for the END of each BEGIN
line to the end of the input: 64 kB of repeated BEGIN lines took 1.3 s, 256 kB 20 s).
This times it on hostile inputs of 1 to 8 MB and on a real-sized chain, and fails when
the time grows clearly faster than linearly (8 MB taking more than 24 times 1 MB's time:
linear growth is 8 times, plus some noise from caches; quadratic growth is 64 times).
Run with ``make bench-certificate``.
"""

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'plugins' / 'module_utils'))
import mailu_certificate as engine  # noqa: E402 pylint: disable=wrong-import-position,import-error

BEGIN = b'-----BEGIN CERTIFICATE-----\n'
CASES = {
    'BEGIN lines only': lambda size: BEGIN * (size // len(BEGIN)),
    'BEGIN lines, one END': lambda size: BEGIN * (size // len(BEGIN)) + b'-----END CERTIFICATE-----\n',
    'mismatched labels': lambda size: b'-----BEGIN CERTIFICATE-----\nAAAA\n-----END X509 CRL-----\n' * (size // 52),
    'empty blocks': lambda size: b'-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n' * (size // 54),
}
SIZES = [1 << 20, 2 << 20, 4 << 20, 8 << 20]


def best_of(function, repeat=3):
    times = []
    for _run in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def main():
    failed = False
    print('%-22s %s' % ('input', ' '.join('%9s' % ('%d MB' % (size >> 20)) for size in SIZES)) + '   8 MB / 1 MB')
    for name, make in CASES.items():
        times = []
        for size in SIZES:
            data = make(size)
            times.append(best_of(lambda data=data: engine._pem_blocks(data, lambda label: True)))
        ratio = times[-1] / max(times[0], 1e-9)
        failed |= ratio > 24
        print('%-22s %s   %6.1f%s' % (name, ' '.join('%8.4fs' % t for t in times), ratio,
                                      '  SUPERLINEAR' if ratio > 24 else ''))
    print('a 5 kB chain: %.1f µs per scan' % (1e6 * best_of(
        lambda: engine._pem_blocks(BEGIN + b'A' * 5000 + b'\n-----END CERTIFICATE-----\n', lambda label: True), 100)))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
