"""Mailu fetchmail TEST STAND-IN (tests/standins/README.md): fetches nothing.

Named /fetchmail.py like Mailu's, whose 2.x healthcheck looks for a process of
that name; it only logs FETCHMAIL_DELAY and waits for SIGTERM.
"""
import sys

sys.path.insert(0, '/standin')
import standin  # noqa: E402  pylint: disable=wrong-import-position

sys.exit(standin.main(['serve', 'fetchmail']))
