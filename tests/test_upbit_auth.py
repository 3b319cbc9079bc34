"""Upbit signing against the facts sheet's worked examples A–D and the official token."""

from __future__ import annotations

import base64
import json
import uuid

import jwt
import pytest

from arb_upbit.auth import Credentials, hash_text, json_body, query_hash, query_pairs, wire_query
from arb_upbit.emulator_auth import received_hash_text, verify_token
from arb_upbit.emulator_market import EmuError

# Upbit's secrets (and the sheet's made-up one) are shorter than PyJWT likes for
# HS512; pytest resets the filter arb_upbit.auth installs, so repeat it here.
pytestmark = pytest.mark.filterwarnings("ignore:The HMAC key is")

ACCESS_KEY = "a7Xd92LmQW3vBtRzYpMj5CxNKeT1HuVs0fFgJcAw"
SECRET_KEY = "upbit-example-secret-NOT-A-REAL-KEY-0123456789"  # made up, from the facts sheet
NONCE = "b2f1e3f8-2dc1-4d6f-a838-c74c49b0e39a"
CREDS = Credentials(ACCESS_KEY, SECRET_KEY)

TOKEN_A = ("eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.eyJhY2Nlc3Nfa2V5IjoiYTdYZDkyTG1RVzN2QnRSellwTWo1Q3hOS2VUMUh1"
           "VnMwZkZnSmNBdyIsIm5vbmNlIjoiYjJmMWUzZjgtMmRjMS00ZDZmLWE4MzgtYzc0YzQ5YjBlMzlhIn0.Q0G7J3R7c03a2g0yc4nG"
           "Ar1zhYvvbGOPxZYSDbfvJnMObykAeyQ21qy8NgbuLjsZzji3AyO4iIIXtBdF-AZziA")

OFFICIAL_TOKEN = (
    "eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9."
    + base64.urlsafe_b64encode(json.dumps({
        "access_key": ACCESS_KEY, "nonce": NONCE,
        "query_hash": "0b3e884d40cc992a85730cf470b4a3286f13d9c46204279ef32153bcdcd4edb7c12925e7266636e86a6d6ae"
                      "5804a6bb394e632e4dba9b4045ad470c93720e5e6",
        "query_hash_alg": "SHA512"}, separators=(",", ":")).encode()).decode().rstrip("=")
    + ".jFOftW_qV7loHsaeZj_hrpkP2iEgdK62D9rwseXSGbwvlNaLG2-iJ-WBFUEG7c1tch0AA-jsHsonhEhezd8sTw")


def test_case_a_no_params_gives_the_exact_token_without_hash_fields():
    token = CREDS.token(None, nonce=NONCE)
    assert token == TOKEN_A
    assert set(jwt.decode(token, SECRET_KEY, algorithms=["HS512"])) == {"access_key", "nonce"}


def test_case_b_get_with_array_params():
    pairs = query_pairs({"market": "KRW-BTC", "states[]": ["wait", "watch"], "limit": 10})
    text = hash_text(pairs)
    assert text == "market=KRW-BTC&states[]=wait&states[]=watch&limit=10"
    assert query_hash(text) == ("e3cfc649139c595e1c26a8aa2b3c8504f4b15011fc2b819081451e5e845172bd5dbbb5110ec5d7a3d1d3"
                                "2ff71f46a78323a040e8bedf8672021fd2206190a3a8")
    assert CREDS.token(text, nonce=NONCE).endswith(
        "JYi7WV0jmN5bNrvhV7xAWZeLFYi_kC08EZGd5_ES8unZlJQqsCpxcJghjExgi76bwCZ338fNtfgtYMv7dInFGg")
    # On the wire the brackets of array names stay as they are.
    assert wire_query(pairs) == text


def test_case_c_post_body_hashed_in_body_order():
    body, text = json_body({"market": "KRW-BTC", "side": "bid", "volume": "0.001", "price": "50000000",
                            "ord_type": "limit", "identifier": "arb-0001"})
    assert text == "market=KRW-BTC&side=bid&volume=0.001&price=50000000&ord_type=limit&identifier=arb-0001"
    assert query_hash(text) == ("848004583543eb0cf02c035f1679fa5bf9adf05369661e56544fbbb5df5d937665a5cd924f3f00c9c8"
                                "95fbf60f05ba778496ef8b9cdc7cb8bec8ecb43669f95d")
    assert CREDS.token(text, nonce=NONCE).endswith(
        "wOQRoN_3r0f8gTa4SVrxTmWOMm6oc5IL0Ak5wX5qLnqdSliQnsyogzJtX8XZm7UXsO6KHo3a9fcdzgx_l65e-g")
    # Numbers travel as strings, so the hashed text is exactly the body's pairs.
    assert json.loads(body) == {"market": "KRW-BTC", "side": "bid", "volume": "0.001", "price": "50000000",
                                "ord_type": "limit", "identifier": "arb-0001"}
    assert list(json.loads(body)) == ["market", "side", "volume", "price", "ord_type", "identifier"]


def test_case_d_delete_by_uuid():
    text = hash_text(query_pairs({"uuid": "cdd92199-2897-4e14-9448-f923320408ad"}))
    assert query_hash(text) == ("79bbec9454274d296b69505bda5f84d5e17b129499e1e1930e51fc3f15b8c4f5d3b13529c558fe3086"
                                "5bde47a8769ca26377f5c55fff94629be3caf7f1ba024e")
    assert CREDS.token(text, nonce=NONCE).endswith(
        "XpIIvc-FB68Xb800EiT1qnXZmjkKPBEu70RZkqTMjOuVReku4p0uy-acmcA41cXlVR18lT-jOWDCMB52udrhDQ")


def test_official_token_example_decodes():
    header = jwt.get_unverified_header(OFFICIAL_TOKEN)
    claims = jwt.decode(OFFICIAL_TOKEN, options={"verify_signature": False})
    assert header == {"alg": "HS512", "typ": "JWT"}
    assert claims["access_key"] == ACCESS_KEY
    assert str(uuid.UUID(claims["nonce"])) == claims["nonce"]
    assert claims["query_hash_alg"] == "SHA512" and len(claims["query_hash"]) == 128
    signature = OFFICIAL_TOKEN.rsplit(".", 1)[1]
    assert len(base64.urlsafe_b64decode(signature + "==")) == 64  # an HS512 MAC
    # The page's secret is unpublished: our made-up one must not verify it.
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(OFFICIAL_TOKEN, SECRET_KEY, algorithms=["HS512"])


def test_every_token_gets_a_fresh_uuid4_nonce():
    nonces = {jwt.decode(CREDS.token(None), SECRET_KEY, algorithms=["HS512"])["nonce"] for _ in range(20)}
    assert len(nonces) == 20
    assert all(uuid.UUID(n).version == 4 for n in nonces)


def test_wire_query_encodes_values_but_hashes_them_raw():
    pairs = query_pairs({"markets": "KRW-BTC,KRW-ETH", "identifier": "a b/c"})
    assert hash_text(pairs) == "markets=KRW-BTC,KRW-ETH&identifier=a b/c"
    assert wire_query(pairs) == "markets=KRW-BTC%2CKRW-ETH&identifier=a%20b%2Fc"
    # What the server rebuilds from the wire is what we hashed.
    assert received_hash_text("GET", wire_query(pairs), b"") == hash_text(pairs)


def test_values_that_would_not_hash_as_sent_are_refused():
    with pytest.raises(TypeError):
        query_pairs({"volume": 0.1})
    with pytest.raises(ValueError):
        query_pairs({"states": ["wait", "watch"]})
    with pytest.raises(TypeError):
        json_body({"volume": 0.001})  # type: ignore[dict-item]


def test_credentials_never_show_their_keys():
    assert SECRET_KEY not in repr(CREDS) and ACCESS_KEY not in repr(CREDS)


def _headers(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_emulator_verifier_accepts_hs512_and_hs256_and_refuses_reuse_and_tampering():
    secrets = {ACCESS_KEY: SECRET_KEY}
    used: set[str] = set()
    query = "market=KRW-BTC&states[]=wait&states[]=watch&limit=10"
    verify_token(_headers(CREDS.token(query)), "GET", query, b"", secrets, used)
    hs256 = CREDS.token(query, algorithm="HS256")
    verify_token(_headers(hs256), "GET", query, b"", secrets, used)
    with pytest.raises(EmuError) as reuse:
        verify_token(_headers(hs256), "GET", query, b"", secrets, used)
    assert (reuse.value.status, reuse.value.name) == (401, "nonce_used")
    with pytest.raises(EmuError) as tampered:
        verify_token(_headers(CREDS.token(query)), "GET", query.replace("10", "11"), b"", secrets, used)
    assert tampered.value.name == "invalid_query_payload"
    wrong = Credentials(ACCESS_KEY, "some-other-secret")
    with pytest.raises(EmuError) as bad_sig:
        verify_token(_headers(wrong.token(query)), "GET", query, b"", secrets, used)
    assert bad_sig.value.name == "jwt_verification"
    body, text = json_body({"market": "KRW-BTC", "side": "bid"})
    verify_token(_headers(CREDS.token(text)), "POST", "", body, secrets, used)
    reordered = CREDS.token("side=bid&market=KRW-BTC")
    with pytest.raises(EmuError) as order_matters:
        verify_token(_headers(reordered), "POST", "", body, secrets, used)
    assert order_matters.value.name == "invalid_query_payload"
