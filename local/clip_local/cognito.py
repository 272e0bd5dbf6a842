"""The reviewers' user pool in moto, as template.yaml declares it, and the check API Gateway's Cognito user
pool authorizer makes of a token, so the local API refuses what the deployed one refuses.

API Gateway (REST, a ``COGNITO_USER_POOLS`` authorizer without scopes) lets a request in when the
``Authorization`` header holds an ID token of the pool: RS256-signed by one of the pool's keys (its JWKS),
issued by the pool (``iss``), for one of its app clients (``aud``), ``token_use`` ``id``, not expired. It then
passes the token's claims to the function as ``requestContext.authorizer.claims`` (values as strings).
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey, RSAPublicNumbers

from .apigw import TokenRefused
from .template import load_template, resource

#: What the local stack's reviewer signs in as (``make local`` prints the password it made).
LOCAL_REVIEWER = "reviewer@example.com"


@dataclass(frozen=True)
class ReviewerPool:
    pool_id: str
    client_id: str
    #: moto's Cognito endpoint (the page signs in there: InitiateAuth, USER_PASSWORD_AUTH).
    endpoint: str
    region: str

    @property
    def issuer(self) -> str:
        return f"https://cognito-idp.{self.region}.amazonaws.com/{self.pool_id}"


def create_reviewer_pool(
    client: Any, endpoint: str, region: str, name: str = "clip-reviewers"
) -> ReviewerPool:
    """The user pool and its app client with the template's settings (``ReviewerUserPool``,
    ``ReviewerUserPoolClient``)."""
    template = load_template()
    pool = resource(template, "ReviewerUserPool")["Properties"]
    app = resource(template, "ReviewerUserPoolClient")["Properties"]
    pool_id = client.create_user_pool(
        PoolName=name,
        UsernameAttributes=pool["UsernameAttributes"],
        AutoVerifiedAttributes=pool["AutoVerifiedAttributes"],
        AdminCreateUserConfig=pool["AdminCreateUserConfig"],
        Policies=pool["Policies"],
    )["UserPool"]["Id"]
    client_id = client.create_user_pool_client(
        UserPoolId=pool_id,
        ClientName=app["ClientName"],
        GenerateSecret=bool(app["GenerateSecret"]),
        ExplicitAuthFlows=app["ExplicitAuthFlows"],
        PreventUserExistenceErrors=app["PreventUserExistenceErrors"],
        WriteAttributes=app["WriteAttributes"],
    )["UserPoolClient"]["ClientId"]
    return ReviewerPool(pool_id, client_id, endpoint, region)


def new_password() -> str:
    """A password the template's policy accepts (12+ characters, upper, lower and digits)."""
    return f"Rv{secrets.token_urlsafe(12)}7a"


def add_reviewer(client: Any, pool: ReviewerPool, email: str, password: str) -> None:
    """What an administrator does (``aws cognito-idp admin-create-user``), with a permanent password."""
    client.admin_create_user(
        UserPoolId=pool.pool_id,
        Username=email,
        UserAttributes=[{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}],
        MessageAction="SUPPRESS",
    )
    client.admin_set_user_password(UserPoolId=pool.pool_id, Username=email, Password=password, Permanent=True)


def sign_in(client: Any, pool: ReviewerPool, email: str, password: str) -> str:
    """The reviewer's ID token, as the review page gets it."""
    result = client.initiate_auth(
        ClientId=pool.client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": email, "PASSWORD": password},
    )
    return str(result["AuthenticationResult"]["IdToken"])


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _public_key(jwk: dict[str, Any]) -> RSAPublicKey:
    exponent, modulus = (int.from_bytes(_b64(jwk[name]), "big") for name in ("e", "n"))
    return RSAPublicNumbers(exponent, modulus).public_key()


@dataclass
class TokenVerifier:
    """API Gateway's check of a Cognito ID token, with the pool's keys fetched once from its JWKS URL."""

    pool: ReviewerPool
    client_ids: frozenset[str]
    clock: Callable[[], float] = time.time
    _keys: dict[str, RSAPublicKey] = field(default_factory=dict)

    def _key(self, kid: str) -> RSAPublicKey:
        if not self._keys:
            url = f"{self.pool.endpoint}/{self.pool.pool_id}/.well-known/jwks.json"
            with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310 - moto on 127.0.0.1
                keys = json.load(reply)["keys"]
            self._keys.update({k["kid"]: _public_key(k) for k in keys if k.get("kty") == "RSA"})
        if kid not in self._keys:
            raise TokenRefused(f"no key {kid!r} in the pool's JWKS")
        return self._keys[kid]

    def claims(self, header_value: str | None) -> dict[str, str]:
        """The token's claims as API Gateway passes them (strings), or :class:`TokenRefused`."""
        if not header_value:
            raise TokenRefused("no Authorization header")
        token = header_value.strip()
        try:
            head_b64, body_b64, signature_b64 = token.split(".")
            header, claims = json.loads(_b64(head_b64)), json.loads(_b64(body_b64))
            signature = _b64(signature_b64)
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            raise TokenRefused("not a JWT") from exc
        if not isinstance(header, dict) or not isinstance(claims, dict) or header.get("alg") != "RS256":
            raise TokenRefused("not an RS256 JWT")
        try:
            self._key(str(header.get("kid"))).verify(
                signature, f"{head_b64}.{body_b64}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature as exc:
            raise TokenRefused("bad signature") from exc
        if claims.get("iss") != self.pool.issuer:
            raise TokenRefused("issued by another pool")
        if claims.get("token_use") != "id" or claims.get("aud") not in self.client_ids:
            raise TokenRefused("not an ID token of this pool's app client")
        expires = claims.get("exp")
        if not isinstance(expires, int | float) or expires <= self.clock():
            raise TokenRefused("expired")
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in claims.items()}
