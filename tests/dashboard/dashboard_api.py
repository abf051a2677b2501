"""The API calls the dashboard tests set their scene with (an organisation per test)."""

from support import api_call

OPERATOR_KEY = "dashboard-test-operator-key-0123456789"
SESSION_SECRET = "dashboard-test-session-secret-0123456789abcdef"


class Org:
    """One organisation: an admin, an agent that pays, a reviewer, two funded USD wallets and a
    policy holding payments above 1000.00 for a human."""

    def __init__(self, base, funds="10000.00"):
        self.base = base
        res = self.call("POST", "/v1/organizations", OPERATOR_KEY, {"name": "Dashboard test"})
        self.admin = res["adminKey"]["secret"]
        self.agent = self.key("agent", ["payments:write", "payments:read", "reviews:write"])
        self.reviewer = self.key("Finance reviewer", ["approvals:read", "approvals:write"])
        self.source = self.wallet("Operations")
        self.payee = self.wallet("ACME Supplies")
        self.call("POST", f"/v1/wallets/{self.source}/fund", self.admin, {"amount": funds})
        self.policy(self.source, {"name": "review large", "maxTransactionAmount": "1000.00",
                                  "requireHumanApproval": True})

    def call(self, method, path, key, body=None, expect=None):
        return api_call(self.base, method, path, key, body, expect)

    def key(self, name, permissions, **extra):
        return self.call("POST", "/v1/api-keys", self.admin, {"name": name, "permissions": permissions, **extra})["secret"]

    def key_id(self, secret):
        return secret[len("csk_"):].rsplit("_", 1)[0]

    def revoke(self, secret):
        self.call("DELETE", f"/v1/api-keys/{self.key_id(secret)}", self.admin)

    def wallet(self, name):
        return self.call("POST", "/v1/wallets", self.admin, {"name": name})["id"]

    def policy(self, wallet, body):
        return self.call("POST", f"/v1/wallets/{wallet}/policies", self.admin, body)["id"]

    def balance(self, wallet):
        return self.call("GET", f"/v1/wallets/{wallet}/balance", self.admin)["balance"]

    def hold(self, amount="5000.00", description="Invoice 1042 from ACME Supplies", **extra):
        """A payment held for approval; returns its approval id."""
        body = {"from": self.source, "to": self.payee, "amount": amount, "description": description,
                "agentReasoning": "Monthly supplies invoice, matches the purchase order", "riskScore": 35,
                "confidenceScore": 0.82, "urgency": "high", **extra}
        res = self.call("POST", "/v1/payments", self.agent, body, expect=202)
        return res["approvalId"]

    def approval(self, approval_id):
        return self.call("GET", f"/v1/approvals/{approval_id}", self.admin)

    def payment(self, payment_id):
        return self.call("GET", f"/v1/payments/{payment_id}", self.admin)

    def review(self, proposed_action, task_type="refund", **extra):
        body = {"task_type": task_type, "proposed_action": proposed_action, "urgency": "critical",
                "agent_reasoning": "Customer reported a double charge", "confidence_score": 0.7, **extra}
        return self.call("POST", "/reviews", self.agent, body, expect=201)["id"]
