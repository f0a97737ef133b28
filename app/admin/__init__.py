"""The admin page (SPEC section 11): server-rendered HTML over the JSON API's use cases.

Pages read through use cases (the same ones the JSON endpoints call, plus the read-only queries of
queries.py); every write (start, pause, resume, cancel a job) is the page's JavaScript calling the
JSON API with `Content-Type: application/json`, so the API's role checks and CSRF rule hold.
"""
