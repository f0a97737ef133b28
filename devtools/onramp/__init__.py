"""The command-line client of the onramp retry service: `python -m devtools.onramp <verb>`.

HTTP only (it imports nothing from `app`): `client.py` talks to the API, `args.py` reads the
command line, `commands.py` runs a verb, `drain.py` starts and follows a retry job, `pending.py`
keeps the Idempotency-Key of a drain that got no answer, `render.py` draws tables, and
`errors.py` holds the exit codes. See the README, "The command-line client".
"""
