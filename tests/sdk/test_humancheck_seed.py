"""The Humancheck payment-approval seed (`payment_workflow`) runs against Countersign's `/reviews`
with only the base URL and the API key changed, three times: a reviewer (another person, in a
thread) approves, then modifies, then rejects."""

import asyncio
import threading
import time

import httpx

# The only two things changed in the seed's code: where it points, and its key.
BASE_URL = "http://set-by-the-test"
API_KEY = "set-by-the-test"

PROCESSED = []


# The seed's helper, as written there.
async def process_payment(amount, vendor, account_number):
    PROCESSED.append((amount, vendor, account_number))
    return {"id": f"txn_{len(PROCESSED)}"}


# ---- The seed's code, unchanged except the base URL and the API key. ----
async def payment_workflow(amount, vendor, account_number):
    """Process payment with human review for high-value transactions."""
    async with httpx.AsyncClient() as client:
        # Threshold for auto-approval
        AUTO_APPROVAL_THRESHOLD = 1000
        
        if amount > AUTO_APPROVAL_THRESHOLD:
            # Request human review
            response = await client.post(
                f"{BASE_URL}/reviews",
                headers={
                    "Authorization": f"Bearer {API_KEY}",
                    "Content-Type": "application/json"
                },
                json={
                    "task_type": "payment",
                    "proposed_action": f"Process payment of ${amount:,.2f} to {vendor} (Account: {account_number})",
                    "agent_reasoning": f"Payment amount (${amount:,.2f}) exceeds auto-approval threshold of ${AUTO_APPROVAL_THRESHOLD:,.2f}",
                    "confidence_score": 0.9,
                    "urgency": "high" if amount > 5000 else "medium",
                    "metadata": {
                        "amount": amount,
                        "vendor": vendor,
                        "account_number": account_number,
                        "currency": "USD"
                    },
                    "blocking": True  # Wait for decision
                }
            )
            review = response.json()
            
            # Get decision
            decision = review.get("decision")
            if not decision:
                # Poll for decision
                decision_response = await client.get(
                    f"{BASE_URL}/reviews/{review['id']}/decision",
                    headers={"Authorization": f"Bearer {API_KEY}"}
                )
                decision = decision_response.json()
            
            # Process based on decision
            if decision["decision_type"] == "approve":
                # Process payment
                result = await process_payment(amount, vendor, account_number)
                return {"status": "completed", "transaction_id": result["id"]}
            elif decision["decision_type"] == "modify":
                # Extract modified amount from modified_action
                modified_action = decision["modified_action"]
                # Parse modified amount (simplified)
                modified_amount = extract_amount(modified_action)
                result = await process_payment(modified_amount, vendor, account_number)
                return {"status": "completed", "transaction_id": result["id"], "modified": True}
            else:
                return {"status": "rejected", "reason": decision.get("notes")}
        else:
            # Auto-approve small payments
            result = await process_payment(amount, vendor, account_number)
            return {"status": "completed", "transaction_id": result["id"], "auto_approved": True}

# Helper function to extract amount from modified action
def extract_amount(action_string):
    """Extract amount from action string."""
    import re
    match = re.search(r'\$?([\d,]+\.?\d*)', action_string)
    if match:
        return float(match.group(1).replace(',', ''))
    return None
# ---- End of the seed's code. ----


def _key(server, admin_key, name, permissions):
    res = httpx.post(
        f"{server}/v1/api-keys",
        json={"name": name, "permissions": permissions},
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    assert res.status_code == 201, res.text
    return res.json()["secret"]


def _reviewer(server, key, decision, seen, errors):
    """Waits for the pending review and decides it (another person than the agent)."""
    headers = {"Authorization": f"Bearer {key}"}
    try:
        deadline = time.time() + 20
        while time.time() < deadline:
            pending = httpx.get(f"{server}/reviews", params={"status": "pending"}, headers=headers).json()
            if pending["reviews"]:
                review = pending["reviews"][0]
                seen.append(review)
                res = httpx.post(f"{server}/reviews/{review['id']}/decide", json=decision, headers=headers)
                assert res.status_code == 200, res.text
                return
            time.sleep(0.1)
        raise AssertionError("no review to decide")
    except Exception as e:  # reported by the test thread
        errors.append(e)


def test_seed_payment_workflow_approve_modify_reject(server, admin_key):
    global BASE_URL, API_KEY
    BASE_URL = server
    API_KEY = _key(server, admin_key, "payments agent", ["reviews:write"])
    reviewer_key = _key(server, admin_key, "finance reviewer", ["approvals:read", "approvals:write"])

    decisions = [
        {"decision_type": "approve", "notes": "ok"},
        {"decision_type": "modify", "modified_action": "Process payment of $4,000.00 to ACME Corp",
         "notes": "contract caps this at 4,000"},
        {"decision_type": "reject", "notes": "Vendor not on the approved list"},
    ]
    results, seen = [], []
    for decision in decisions:
        errors = []
        thread = threading.Thread(target=_reviewer, args=(server, reviewer_key, decision, seen, errors))
        thread.start()
        results.append(asyncio.run(payment_workflow(5000, "ACME Corp", "1234567890")))
        thread.join(timeout=30)
        assert not errors, errors

    assert results[0] == {"status": "completed", "transaction_id": "txn_1"}
    assert results[1] == {"status": "completed", "transaction_id": "txn_2", "modified": True}
    assert results[2] == {"status": "rejected", "reason": "Vendor not on the approved list"}
    assert PROCESSED == [(5000, "ACME Corp", "1234567890"), (4000.0, "ACME Corp", "1234567890")]

    review = seen[0]
    assert review["id"].startswith("rev_") and review["task_type"] == "payment"
    assert review["proposed_action"] == "Process payment of $5,000.00 to ACME Corp (Account: 1234567890)"
    assert review["urgency"] == "medium" and review["confidence_score"] == 0.9
    assert review["metadata"] == {"amount": 5000, "vendor": "ACME Corp", "account_number": "1234567890",
                                  "currency": "USD"}

    # Small payments never reach a reviewer.
    assert asyncio.run(payment_workflow(500, "ACME Corp", "1234567890"))["auto_approved"] is True

    listed = httpx.get(f"{server}/reviews", params={"task_type": "payment"},
                       headers={"Authorization": f"Bearer {reviewer_key}"}).json()
    assert listed["total"] == 3
    assert sorted(r["status"] for r in listed["reviews"]) == ["approved", "modified", "rejected"]
