from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

# The `share` of a statement shared with every member (DESIGN.md): no sharing group may take it as
# its slug, or what its members share with it would go to everyone.
CONSORTIUM_SHARE = "consortium"


class Member(models.Model):
    class Kind(models.TextChoices):
        PLATFORM = "platform"
        GOVERNMENT = "government"
        NGO = "ngo"
        # The server itself, as the issuer of the statements it signs (a dispute's removal). One row,
        # made by hashes.services.disputes.server_member; never a member anyone onboards.
        SERVER = "server"

    # The kinds an administrator can onboard.
    MEMBER_KINDS = ("platform", "government", "ngo")

    class Status(models.TextChoices):
        ACTIVE = "active"
        SUSPENDED = "suspended"

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["slug"]
        permissions = [("suspend_member", "Can suspend and reactivate members")]

    def __str__(self) -> str:
        return self.slug

    def clean(self) -> None:
        # The server's own row (hashes.services.disputes.server_member) is found by this slug: a
        # member onboarded under it would be taken for the server.
        if self.slug == settings.SERVER_ISSUER and self.kind != self.Kind.SERVER:
            raise ValidationError({"slug": f"{self.slug!r} names the server itself (SERVER_ISSUER)."})

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class SharingGroup(models.Model):
    """A subset of members that share statements only among themselves."""

    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    members = models.ManyToManyField(Member, related_name="sharing_groups", blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug

    def clean(self) -> None:
        if self.slug == CONSORTIUM_SHARE:
            raise ValidationError({"slug": f"{CONSORTIUM_SHARE!r} is the share of every member, not a group's."})


class ApiToken(models.Model):
    """A bearer credential. The token itself is shown once; only its SHA-256 digest is stored, found
    by its public prefix and compared in constant time."""

    class Scope(models.TextChoices):
        SUBMIT = "submit"
        READ = "read"
        MATCH = "match"
        SUBSCRIBE = "subscribe"

    member = models.ForeignKey(Member, on_delete=models.CASCADE, related_name="tokens")
    name = models.CharField(max_length=100, blank=True)
    prefix = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [
            ("issue_token", "Can issue API tokens"),
            ("revoke_token", "Can revoke API tokens"),
        ]

    def __str__(self) -> str:
        return f"{self.member.slug}:{self.prefix}"

    def is_expired(self, now=None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())


class SigningKey(models.Model):
    """A member's Ed25519 public key. Keys registered through the API wait for an administrator, so
    a stolen API token alone can never add a key that signs."""

    class State(models.TextChoices):
        PENDING = "pending"
        ACTIVE = "active"
        RETIRED = "retired"
        REVOKED = "revoked"

    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="signing_keys")
    kid = models.CharField(max_length=128, unique=True)
    thumbprint = models.CharField(max_length=64, unique=True)
    public_key = models.CharField(max_length=64, help_text="The raw public key, base64url (the JWK's x).")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    created_at = models.DateTimeField(default=timezone.now)
    state_changed_at = models.DateTimeField(default=timezone.now)
    # The administrator who registered it in the admin, who may not also approve it. None for keys a
    # member registered through the API and for operator commands.
    registered_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT,
                                      related_name="registered_signing_keys")
    # The API token that registered it through POST keys/: revoking that token revokes the key while it
    # is still pending, so a stolen token leaves nothing in the approval queue. None for the admin and
    # operator commands.
    registered_by_token = models.ForeignKey(ApiToken, null=True, blank=True, on_delete=models.SET_NULL,
                                            related_name="registered_signing_keys")
    # Revoked (compromised): what it signed is withdrawn for everyone (hashes.services.revocation),
    # only what the server received at or after `compromised_since` when an administrator gave it.
    # `withdrawn_at`: when that finished; a revoked key without it still has statements to withdraw.
    compromised_since = models.DateTimeField(null=True, blank=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["member__slug", "created_at"]
        permissions = [
            ("approve_signingkey", "Can approve pending signing keys"),
            ("revoke_signingkey", "Can retire and revoke signing keys"),
        ]

    def __str__(self) -> str:
        return f"{self.member.slug}:{self.kid} ({self.state})"

    def jwk(self) -> dict[str, str]:
        return {"kty": "OKP", "crv": "Ed25519", "x": self.public_key, "kid": self.kid, "alg": "Ed25519", "use": "sig"}
