"""Every access the local runtime makes, checked against the synthesized policy of its role.

    from boostline.local.iam import AccessChecker, PolicyEvaluator, Stage, accesses_for_request

    with PolicyEvaluator() as evaluator:              # one Node process
        checker = AccessChecker(evaluator, rendered_stacks, account=account)
        role = request_role("Processing", request)   # boostline-dev-preprocess
        accesses = accesses_for_request("Processing", request, stage, name=job_name)
        checker.check(role, accesses, session="SageMaker")  # raises AccessDenied

`rules.RULES` is the table of what SageMaker does with a job's role; `boto_calls` maps
recorded boto3 calls (Lambda handlers) onto accesses; `policies.role_policies` collects
a role's statements from the rendered templates; the evaluator is
@cloud-copilot/iam-simulate, pinned in package.json.
"""

from boostline.local.iam.access import (
    Access,
    AccessChecker,
    AccessDenied,
    Decision,
    assumed_role_arn,
    role_name,
)
from boostline.local.iam.boto_calls import (
    ArnFormats,
    Call,
    CallRecorder,
    UnmappedCall,
    accesses_for_call,
)
from boostline.local.iam.evaluator import (
    EvaluatorError,
    EvaluatorUnavailable,
    Policy,
    PolicyEvaluator,
)
from boostline.local.iam.policies import PolicyLookupError, role_names, role_policies
from boostline.local.iam.rules import (
    RULES,
    Rule,
    Stage,
    UnresolvedRequest,
    accesses_for_request,
    request_role,
)

__all__ = [
    "RULES",
    "Access",
    "AccessChecker",
    "AccessDenied",
    "ArnFormats",
    "Call",
    "CallRecorder",
    "Decision",
    "EvaluatorError",
    "EvaluatorUnavailable",
    "Policy",
    "PolicyEvaluator",
    "PolicyLookupError",
    "Rule",
    "Stage",
    "UnmappedCall",
    "UnresolvedRequest",
    "accesses_for_call",
    "accesses_for_request",
    "assumed_role_arn",
    "request_role",
    "role_name",
    "role_names",
    "role_policies",
]
