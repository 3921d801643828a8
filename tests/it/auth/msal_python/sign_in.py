"""Signs in with MSAL Python's device code flow, then refreshes through acquire_token_silent.

Usage: REQUESTS_CA_BUNDLE=CA_FILE sign_in.py AUTHORITY CLIENT_ID SCOPE CACHE_FILE

The CA goes in through the environment because requests lets REQUESTS_CA_BUNDLE, when set,
win over MSAL's `verify=`. Writes MSAL's serialized token cache to CACHE_FILE (mode 0600, as
an app that keeps its cache private does) and prints one JSON line about the outcome. Tokens
are never printed.
"""

import json
import os
import sys

import msal


def fail(step, result):
    print(json.dumps({"failed": step, "error": result.get("error"),
                      "error_description": result.get("error_description")}))
    sys.exit(1)


def main():
    authority, client_id, scope, cache_file = sys.argv[1:5]
    cache = msal.SerializableTokenCache()
    app = msal.PublicClientApplication(
        client_id,
        authority=authority,
        token_cache=cache,
        # The emulator is not a Microsoft host; asking Microsoft about it needs the internet.
        instance_discovery=False,
    )
    flow = app.initiate_device_flow(scopes=[scope])
    if "user_code" not in flow:
        fail("initiate_device_flow", flow)
    signed_in = app.acquire_token_by_device_flow(flow)
    if "access_token" not in signed_in:
        fail("acquire_token_by_device_flow", signed_in)
    accounts = app.get_accounts()
    if len(accounts) != 1:
        fail("get_accounts", {"error": "%d accounts" % len(accounts)})
    refreshed = app.acquire_token_silent([scope], account=accounts[0], force_refresh=True)
    if not refreshed or "access_token" not in refreshed:
        fail("acquire_token_silent", refreshed or {"error": "no token"})
    fd = os.open(cache_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(cache.serialize())
    print(json.dumps({
        "msal_version": msal.__version__,
        "username": accounts[0]["username"],
        "environment": accounts[0]["environment"],
        "tenant_id": signed_in.get("id_token_claims", {}).get("tid"),
        "signed_in_source": signed_in.get("token_source"),
        "refreshed_source": refreshed.get("token_source"),
        "new_access_token": refreshed["access_token"] != signed_in["access_token"],
        "scope": sorted(refreshed.get("scope", "").split()),
    }))


main()
