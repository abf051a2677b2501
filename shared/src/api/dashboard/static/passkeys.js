// Countersign dashboard: passkeys (WebAuthn). Registration on /dashboard/passkeys, and the
// step-up ceremony on an approval page whose policy asks for one (`data-step-up` on the decide
// form): the server issues a nonce and the challenge computed from what this decision will do,
// the authenticator signs it, and the form is sent with the assertion. Without JavaScript or
// WebAuthn the server refuses the decision with a message, and nothing is decided.
(function () {
  "use strict";

  function enc(buffer) {
    var bytes = new Uint8Array(buffer), text = "";
    for (var i = 0; i < bytes.length; i++) { text += String.fromCharCode(bytes[i]); }
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  function dec(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) { b64 += "="; }
    var raw = atob(b64), bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
    return bytes.buffer;
  }
  function post(url, fields) {
    return fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Accept": "application/json" }, body: new URLSearchParams(fields)
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (body) {
        if (!res.ok) { throw new Error((body.error && body.error.message) || ("HTTP " + res.status)); }
        return body;
      });
    });
  }
  function say(target, text) {
    var box = document.querySelector(target);
    if (box) { box.textContent = text; box.hidden = !text; }
  }

  // ---- registration
  var add = document.querySelector("[data-passkey-add]");
  if (add) {
    add.addEventListener("submit", function (e) {
      e.preventDefault();
      if (!window.PublicKeyCredential) { say("[data-passkey-error]", "This browser cannot use passkeys."); return; }
      var csrf = add.querySelector("[name=csrf]").value, name = add.querySelector("[name=name]").value;
      say("[data-passkey-error]", "");
      post(add.getAttribute("data-options"), { csrf: csrf }).then(function (o) {
        return navigator.credentials.create({ publicKey: {
          challenge: dec(o.challenge),
          rp: { id: o.rpId, name: o.rpName },
          user: { id: dec(o.userId), name: o.userName, displayName: o.userName },
          pubKeyCredParams: [{ type: "public-key", alg: -7 }, { type: "public-key", alg: -8 }],
          excludeCredentials: o.excludeCredentials.map(function (id) { return { type: "public-key", id: dec(id) }; }),
          authenticatorSelection: { residentKey: "preferred", userVerification: "required" },
          attestation: "none", timeout: 120000
        } }).then(function (credential) {
          return post(add.getAttribute("action"), {
            csrf: csrf, name: name, challenge: o.challenge,
            clientDataJSON: enc(credential.response.clientDataJSON),
            attestationObject: enc(credential.response.attestationObject)
          });
        });
      }).then(function () { window.location.reload(); })
        .catch(function (err) { say("[data-passkey-error]", "Not registered: " + err.message); });
    });
  }

  // ---- step-up on a decision
  var form = document.querySelector("form[data-step-up]");
  if (form) {
    form.addEventListener("submit", function (e) {
      var button = e.submitter, action = button && button.value;
      if ((action !== "approve" && action !== "modify") || form.getAttribute("data-stepped-up")) { return; }
      // Only above the threshold (the server decides; this only spares a needless ceremony).
      var amount = action === "modify" ? form.querySelector("[name=amount]").value : form.getAttribute("data-asked");
      // An "always allow" rule up to a cap is approved as if approving the cap.
      var allow = action === "approve" && form.querySelector("[data-always-allow]:checked");
      var cap = allow ? form.querySelector("[name=allow_max]").value : "";
      if (allow && parseFloat(cap) > parseFloat(amount)) { amount = cap; }
      if (!(parseFloat(amount) > parseFloat(form.getAttribute("data-step-up-above")))) { return; }
      e.preventDefault();
      if (!window.PublicKeyCredential) { say("[data-step-up-error]", "This browser cannot use passkeys."); return; }
      var fields = { csrf: form.querySelector("[name=csrf]").value, action: action };
      if (action === "modify") { fields.amount = form.querySelector("[name=amount]").value; }
      if (allow) { fields.always_allow = "on"; fields.allow_max = cap; }
      say("[data-step-up-error]", "");
      post(form.getAttribute("data-step-up"), fields).then(function (start) {
        return navigator.credentials.get({ publicKey: {
          challenge: dec(start.challenge), rpId: start.rpId, userVerification: "required", timeout: 120000,
          allowCredentials: start.allowCredentials.map(function (id) { return { type: "public-key", id: dec(id) }; })
        } }).then(function (assertion) {
          var proof = {
            step_up_nonce: start.nonce,
            step_up_credential: enc(assertion.rawId),
            step_up_authenticator_data: enc(assertion.response.authenticatorData),
            step_up_client_data: enc(assertion.response.clientDataJSON),
            step_up_signature: enc(assertion.response.signature)
          };
          Object.keys(proof).forEach(function (name) {
            var input = document.createElement("input");
            input.type = "hidden"; input.name = name; input.value = proof[name];
            form.appendChild(input);
          });
          form.setAttribute("data-stepped-up", "1");
          form.requestSubmit(button);
        });
      }).catch(function (err) { say("[data-step-up-error]", "Passkey step-up failed: " + err.message); });
    });
  }
})();
