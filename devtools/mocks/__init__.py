"""Local stand-ins for what the service talks to, importable by the tests, the rehearsal and the
bench, and runnable on their own (see devtools/mock-integrations/README.md):

    python -m devtools.mocks.crm        # mock CRM: webhooks, /objects/<key>, failure modes
    python -m devtools.mocks.smtp       # SMTP sink
    python -m devtools.mocks.triggers   # fires signed CRM triggers at a running service

The mock OIDC provider is devtools.mock_oidc.
"""
