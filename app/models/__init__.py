"""Typed models, one module per aggregate. Importing this package registers every table."""

from app.models.accounts import Account, ObjectEntityId, Project
from app.models.audit import RetryBatch
from app.models.base import Base
from app.models.executions import ExecutionLog, RampExecution, SupersededExecution, WorkflowHistory
from app.models.identity import ApiKey, AuthThrottle, User, UserSession
from app.models.jobs import RetryJob, RetryJobEvent
from app.models.outbox import Notification
from app.models.plans import RetryPlan, RetryPlanRow
from app.models.ramps import Ramp, RampVersion
from app.models.tenancy import CrmIntegration, Vendor

__all__ = [
    "Account",
    "ApiKey",
    "AuthThrottle",
    "Base",
    "CrmIntegration",
    "ExecutionLog",
    "Notification",
    "ObjectEntityId",
    "Project",
    "Ramp",
    "RampExecution",
    "SupersededExecution",
    "RampVersion",
    "RetryBatch",
    "RetryJob",
    "RetryJobEvent",
    "RetryPlan",
    "RetryPlanRow",
    "User",
    "UserSession",
    "Vendor",
    "WorkflowHistory",
]
