"""The wallgent 0.3.0 SDK runs the approvals flow of the Wallgent seed against Countersign with only
base_url changed."""

import pytest
from wallgent import Wallgent
from wallgent.exceptions import (
    ApiKeyRevokedError,
    APIError,
    InsufficientFundsError,
    InvalidAmountError,
    PolicyDeniedError,
)


def test_human_in_the_loop_approvals_flow(server, admin_key):
    base_url = f"{server}/v1"
    admin = Wallgent(api_key=admin_key, base_url=base_url)

    agent_wallet = admin.wallets.create("Procurement agent", agent_name="buyer-bot")
    vendor_wallet = admin.wallets.create("ACME Corp")
    funded = admin.wallets.fund(agent_wallet["id"], "10000.00")
    assert funded["newBalance"] == "10000.00"

    reviewer_key = admin.api_keys.create("reviewer", ["approvals:read", "approvals:write"])
    agent_key = admin.api_keys.create("agent", ["payments:write", "payments:read", "wallets:read"])
    assert reviewer_key["secret"] and "secret" not in admin.api_keys.retrieve(reviewer_key["id"])

    # Step 1 of the seed: a policy requiring approval above 1000.
    policy = admin.policies.create(
        agent_wallet["id"], "Large payment review", max_transaction_amount="1000.00", require_human_approval=True
    )
    assert policy["requireHumanApproval"] is True
    assert admin.policies.list(agent_wallet["id"])[0]["id"] == policy["id"]

    agent = Wallgent(api_key=agent_key["secret"], base_url=base_url)
    small = agent.payments.send(agent_wallet["id"], to_wallet_id=vendor_wallet["id"], amount="10.00")
    assert small["status"] == "COMPLETED"

    result = agent.payments.send(
        agent_wallet["id"], to_wallet_id=vendor_wallet["id"], amount="5000.00", description="Large vendor payment"
    )
    assert result["status"] == "PENDING_APPROVAL"
    approval_id = result["approvalId"]

    reviewer = Wallgent(api_key=reviewer_key["secret"], base_url=base_url)
    pending = reviewer.approvals.list(status="PENDING")["data"]
    assert [a["id"] for a in pending] == [approval_id]
    details = pending[0]["transactionDetails"]
    assert (details["amount"], details["currency"], details["recipient"]) == ("5000.00", "USD", vendor_wallet["id"])

    approval = reviewer.approvals.retrieve(approval_id)
    assert approval["walletId"] == agent_wallet["id"]
    assert approval["policyId"] == policy["id"]
    assert approval["transactionDetails"]["description"] == "Large vendor payment"
    assert approval["status"] == "PENDING" and approval["expiresAt"]

    approved = reviewer.approvals.approve(approval_id)
    assert approved["status"] == "APPROVED"
    assert approved["resolvedBy"] == reviewer_key["id"]
    assert agent.payments.retrieve(result["id"])["status"] == "COMPLETED"
    assert admin.wallets.get_balance(agent_wallet["id"])["balance"] == "4990.00"

    with pytest.raises(APIError) as conflict:
        reviewer.approvals.approve(approval_id)
    assert conflict.value.error_code == "APPROVAL_NOT_PENDING"

    second = agent.payments.send(agent_wallet["id"], to_wallet_id=vendor_wallet["id"], amount="2000.00")
    rejected = reviewer.approvals.reject(second["approvalId"], reason="Amount exceeds vendor contract limit")
    assert rejected["status"] == "REJECTED"
    assert agent.payments.retrieve(second["id"])["status"] == "REJECTED"
    assert admin.wallets.get_balance(agent_wallet["id"])["balance"] == "4990.00"

    filtered = reviewer.approvals.list(wallet_id=agent_wallet["id"], status="REJECTED")["data"]
    assert [a["id"] for a in filtered] == [second["approvalId"]]

    entries = admin.wallets.list_transactions(agent_wallet["id"])["data"]
    assert sorted(e["kind"] for e in entries) == ["DEBIT", "DEBIT", "FUND"]
    actions = {e["action"] for e in admin.audit_logs.list(limit=100)["data"]}
    assert {"approval.approved", "approval.rejected", "payment.held"} <= actions

    # Errors arrive as the SDK's typed exceptions.
    with pytest.raises(InsufficientFundsError):
        agent.payments.send(agent_wallet["id"], to_wallet_id=vendor_wallet["id"], amount="900000.00")
    with pytest.raises(InvalidAmountError):
        agent.payments.send(agent_wallet["id"], to_wallet_id=vendor_wallet["id"], amount="1.001")
    admin.policies.update(agent_wallet["id"], policy["id"], require_human_approval=False)
    with pytest.raises(PolicyDeniedError):
        agent.payments.send(agent_wallet["id"], to_wallet_id=vendor_wallet["id"], amount="1500.00")

    renamed = admin.api_keys.update(reviewer_key["id"], name="senior reviewer", permissions=["approvals:read", "approvals:write"])
    assert renamed["name"] == "senior reviewer"
    assert reviewer_key["id"] in [k["id"] for k in admin.api_keys.list()["data"]]
    admin.api_keys.delete(reviewer_key["id"])
    with pytest.raises(ApiKeyRevokedError):
        reviewer.approvals.list()
