"""Workflow error types and their classification (SPEC section 1).

The category decides what a replay can do: `config` errors need a config fix first (the retry
endpoint skips them unless forced); `integration` errors clear once the outside world is back;
`runtime` errors are bugs that clear once the fix is deployed.
"""

from __future__ import annotations

CONFIG = "config"
INTEGRATION = "integration"
RUNTIME = "runtime"


class WorkflowError(Exception):
    category = RUNTIME

    @property
    def error_type(self) -> str:
        return type(self).__name__


class MissingTriggerField(WorkflowError):
    category = CONFIG


class MissingRelatedAccount(WorkflowError):
    category = CONFIG


class InvalidConfigurationError(WorkflowError):
    category = CONFIG


class IntegrationConnectionError(WorkflowError):
    category = INTEGRATION


class RateLimitError(WorkflowError):
    category = INTEGRATION


class InvalidAccessTokenError(WorkflowError):
    category = INTEGRATION


class ModuleTimeoutError(WorkflowError):
    category = INTEGRATION


CONFIG_ERROR_TYPES = frozenset(
    cls.__name__ for cls in (MissingTriggerField, MissingRelatedAccount, InvalidConfigurationError)
)
INTEGRATION_ERROR_TYPES = frozenset(
    cls.__name__ for cls in (IntegrationConnectionError, RateLimitError, InvalidAccessTokenError, ModuleTimeoutError)
)


def classify(error_type: str) -> str:
    """Category of an error type name; anything unknown is a runtime bug."""
    if error_type in CONFIG_ERROR_TYPES:
        return CONFIG
    if error_type in INTEGRATION_ERROR_TYPES:
        return INTEGRATION
    return RUNTIME


def describe(exc: BaseException) -> tuple[str, str, str]:
    """(error_type, category, message) for any exception raised by a step."""
    error_type = type(exc).__name__
    message = str(exc) or error_type
    return error_type, classify(error_type), message
