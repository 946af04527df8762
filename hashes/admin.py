from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from consortium.admin_tools import ReadOnlyAdmin, SlugFixedAdmin
from consortium.api.errors import CodedError

from .models import Corroboration, Dispute, Event, Feedback, Hash, Incident, Label, Statement
from .services.disputes import OUTCOMES, REVIEWED, dispute_resolve, removal_lift
from .services.taxonomy import incident_close


@admin.register(Label)
class LabelAdmin(SlugFixedAdmin):
    list_display = ["slug", "name", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["slug", "name"]

    def has_delete_permission(self, request, obj=None):
        return False  # published statements carry their labels for good; deactivate a label instead


@admin.register(Incident)
class IncidentAdmin(SlugFixedAdmin):
    list_display = ["slug", "name", "state", "declared_at", "closed_at"]
    list_filter = ["state"]
    search_fields = ["slug", "name"]
    readonly_fields = ["state", "declared_at", "closed_at"]
    actions = ["close"]

    # Declaring an incident puts its statements ahead of everyone else's, so declaring, changing,
    # closing and deleting one each need manage_incident on top of Django's own permission.
    def has_manage_incident_permission(self, request) -> bool:
        return request.user.has_perm("hashes.manage_incident")

    def has_add_permission(self, request):
        return super().has_add_permission(request) and self.has_manage_incident_permission(request)

    def has_change_permission(self, request, obj=None):
        return super().has_change_permission(request, obj) and self.has_manage_incident_permission(request)

    def has_delete_permission(self, request, obj=None):
        return super().has_delete_permission(request, obj) and self.has_manage_incident_permission(request)

    @admin.action(description="Close selected incidents", permissions=["manage_incident"])
    def close(self, request, queryset):
        for incident in queryset:
            incident_close(incident=incident, actor=request.user)


class RejectionCodeFilter(admin.SimpleListFilter):
    """The rejection codes statements have, read where one is set (the statement_rejected index, a
    few rows), not as the distinct values of the whole table on every load of the list."""

    title = "rejection code"
    parameter_name = "rejection_code"

    def lookups(self, request, model_admin):
        codes = (Statement.objects.exclude(rejection_code="").order_by("rejection_code")
                 .values_list("rejection_code", flat=True).distinct())
        return [(code, code) for code in codes]

    def queryset(self, request, queryset):
        return queryset.filter(rejection_code=self.value()) if self.value() else queryset


@admin.register(Statement)
class StatementAdmin(ReadOnlyAdmin):
    list_display = ["id", "member", "jti", "kind", "state", "rejection_code", "priority", "received_at", "published_at"]
    list_filter = ["state", "kind", RejectionCodeFilter, "priority", "member"]
    search_fields = ["jti", "id", "member__slug"]
    date_hierarchy = "received_at"
    list_select_related = ["member"]
    readonly_fields = [f.name for f in Statement._meta.fields] + ["labels"]


# The corroborations a hash's page lists, newest first: a hash's ended ones (retracted, superseded)
# grow with every repeat of its value, and the page is read by people, not paged through.
HASH_PAGE_CORROBORATIONS = 100


@admin.register(Hash)
class HashAdmin(ReadOnlyAdmin):
    list_display = ["id", "signal_type", "value", "cluster", "state", "created_at", "updated_at"]
    list_filter = ["signal_type", "state"]
    search_fields = ["value"]
    readonly_fields = [f.name for f in Hash._meta.fields] + ["feedback_counts", "disputes", "corroborations"]

    @admin.display(description=f"corroborations (the newest {HASH_PAGE_CORROBORATIONS})")
    def corroborations(self, obj):
        rows = list(Corroboration.objects.filter(hash=obj).select_related("member").order_by("-id")
                    [:HASH_PAGE_CORROBORATIONS + 1])
        if not rows:
            return "none"
        more = " (and older ones not listed)" if len(rows) > HASH_PAGE_CORROBORATIONS else ""
        return format_html(
            "<table><tr><th>statement</th><th>member</th><th>distance</th><th>created</th><th>ended</th>"
            "<th>superseded by</th></tr>{}</table>{}",
            format_html_join("", '<tr><td><a href="{}">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>'
                                 "<td>{}</td></tr>", (
                (reverse("admin:hashes_statement_change", args=[c.statement_id]), c.statement_id, c.member.slug,
                 "" if c.distance is None else c.distance, c.created_at, c.retracted_at or "",
                 c.superseded_by_id or "")
                for c in rows[:HASH_PAGE_CORROBORATIONS])),
            more)

    @admin.display(description="feedback (live verdicts, distinct members, every audience)")
    def feedback_counts(self, obj):
        live = Feedback.objects.filter(hash=obj, ended_at__isnull=True, is_answer=False)
        return ", ".join(f"{verdict}: {live.filter(verdict=verdict).values('member').distinct().count()}"
                         for verdict in Feedback.Verdict.values)

    @admin.display(description="disputes")
    def disputes(self, obj):
        rows = list(Dispute.objects.filter(hash=obj).order_by("-opened_at")[:20])
        if not rows:
            return "none"
        return format_html_join(", ", '<a href="{}">#{} {}</a>', (
            (reverse("admin:hashes_dispute_change", args=[d.pk]), d.pk, d.state) for d in rows))


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["seq", "type", "hash", "occurred_at", "cause"]
    list_filter = ["type"]
    readonly_fields = [f.name for f in Event._meta.fields]


class ResolveDisputeForm(forms.Form):
    outcome = forms.ChoiceField(choices=[(o, o) for o in OUTCOMES], widget=forms.RadioSelect,
                                help_text="upheld: the hash stays. relabelled: its labels are replaced for everyone. "
                                          "removed: the server retracts it for everyone, by a statement it signs.")
    resolution = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 80}), max_length=2000,
                                 help_text="The reason every member who sees the dispute will read. The outcome "
                                           "reaches everyone who sees the hash; for a dispute a sharing group "
                                           f"opened, the server's removal statement says only '{REVIEWED}', so "
                                           "these words stay within the group.")
    labels = forms.ModelMultipleChoiceField(queryset=Label.objects.filter(is_active=True), to_field_name="slug",
                                            required=False, widget=forms.CheckboxSelectMultiple,
                                            help_text="relabelled only: the labels that replace the hash's.")


class LiftRemovalForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 80}), max_length=2000,
                             help_text="Why statements of this value may be accepted again (kept in the audit "
                                       "trail). The hash stays retracted until a member asserts it again.")


def waited(dispute: Dispute) -> str:
    seconds = int(((dispute.resolved_at or timezone.now()) - dispute.opened_at).total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    return f"{days}d {hours}h" if days else f"{hours}h {rest // 60}m"


@admin.register(Feedback)
class FeedbackAdmin(ReadOnlyAdmin):
    list_display = ["id", "hash", "member", "verdict", "reasons", "is_answer", "created_at", "ended_at"]
    list_filter = ["verdict", "is_answer"]
    search_fields = ["hash__value", "member__slug"]
    list_select_related = ["hash", "member"]
    readonly_fields = [f.name for f in Feedback._meta.fields]


@admin.register(Dispute)
class DisputeAdmin(ReadOnlyAdmin):
    """The dispute queue: open cases first, oldest first, each with its evidence. Resolving needs
    hashes.resolve_dispute (the "Dispute review" role); viewing grants nothing more."""

    list_display = ["id", "hash_link", "state", "reasons_text", "opened_by_member", "opened_at", "waiting", "votes"]
    list_filter = ["state"]
    search_fields = ["hash__value", "member__slug"]
    list_select_related = ["hash", "member"]
    change_form_template = "admin/hashes/dispute_change_form.html"
    readonly_fields = ["hash", "state", "reasons", "member", "share_group", "opened_by", "opened_at", "resolved_at",
                       "resolution", "labels", "resolved_by", "removal"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            open_first=Count("pk", filter=Q(state=Dispute.State.OPEN)),
            disagree=Count("hash__feedback", filter=Q(hash__feedback__ended_at__isnull=True,
                                                      hash__feedback__verdict="disagree", hash__feedback__is_answer=False),
                           distinct=True),
        ).order_by("-open_first", "opened_at", "pk")

    @admin.display(description="hash")
    def hash_link(self, obj):
        return format_html('<a href="{}">{} {}</a>', reverse("admin:hashes_hash_change", args=[obj.hash_id]),
                           obj.hash.signal_type, obj.hash.value[:16])

    @admin.display(description="reasons")
    def reasons_text(self, obj):
        return ", ".join(obj.reasons)

    @admin.display(description="opened by")
    def opened_by_member(self, obj):
        return obj.member.slug if obj.member else "suppression list"

    @admin.display(description="waited")
    def waiting(self, obj):
        return waited(obj)

    @admin.display(description="disagree")
    def votes(self, obj):
        return obj.disagree

    def get_urls(self):
        own = [path("<int:dispute_id>/resolve/", self.admin_site.admin_view(self.resolve_view),
                    name="hashes_dispute_resolve"),
               path("<int:dispute_id>/lift/", self.admin_site.admin_view(self.lift_view),
                    name="hashes_dispute_lift")]
        return own + super().get_urls()

    def evidence(self, dispute: Dispute) -> dict:
        hash_ = dispute.hash
        corroborations = list(Corroboration.objects.filter(hash=hash_).select_related("statement", "member")
                              .prefetch_related("statement__labels").order_by("id")[:200])
        feedback = list(Feedback.objects.filter(hash=hash_).select_related("statement", "member").order_by("id")[:500])
        return {
            "hash": hash_, "corroborations": corroborations,
            "votes": [f for f in feedback if not f.is_answer], "answers": [f for f in feedback if f.is_answer],
            "seen": len({f.member_id for f in feedback if f.verdict == "seen" and f.ended_at is None}),
            "waited": waited(dispute),
            "history": Event.objects.filter(hash=hash_).order_by("-seq")[:50],
        }

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied  # before reading any evidence
        dispute = get_object_or_404(Dispute, pk=object_id)
        extra_context = {**(extra_context or {}), **self.evidence(dispute),
                         "can_resolve": request.user.has_perm("hashes.resolve_dispute")
                         and dispute.state == Dispute.State.OPEN,
                         "can_lift": request.user.has_perm("hashes.resolve_dispute") and self.liftable(dispute),
                         "resolve_form": ResolveDisputeForm()}
        return super().change_view(request, object_id, form_url, extra_context)

    def resolve_view(self, request, dispute_id: int):
        if not request.user.has_perm("hashes.resolve_dispute"):
            raise PermissionDenied
        dispute = get_object_or_404(Dispute, pk=dispute_id)
        form = ResolveDisputeForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                dispute_resolve(dispute_id=dispute.pk, outcome=form.cleaned_data["outcome"],
                                resolution=form.cleaned_data["resolution"],
                                labels=[label.slug for label in form.cleaned_data["labels"]], actor=request.user)
            except CodedError as exc:
                form.add_error(None, f"{exc.code}: {exc.message}")
            else:
                messages.success(request, f"Dispute {dispute.pk} resolved: {form.cleaned_data['outcome']}.")
                return redirect(reverse("admin:hashes_dispute_change", args=[dispute.pk]))
        context = {**self.admin_site.each_context(request), **self.evidence(dispute), "dispute": dispute,
                   "original": dispute, "resolve_form": form, "can_resolve": True, "opts": self.model._meta,
                   "title": f"Resolve dispute {dispute.pk}"}
        return TemplateResponse(request, "admin/hashes/dispute_resolve.html", context)

    @staticmethod
    def liftable(dispute: Dispute) -> bool:
        return dispute.state == Dispute.State.REMOVED and dispute.hash.removal_holds is not None

    def lift_view(self, request, dispute_id: int):
        """Lift the removal a `removed` outcome holds on the dispute's hash (hashes.resolve_dispute)."""
        if not request.user.has_perm("hashes.resolve_dispute"):
            raise PermissionDenied
        dispute = get_object_or_404(Dispute.objects.select_related("hash"), pk=dispute_id)
        form = LiftRemovalForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            if not self.liftable(dispute):
                form.add_error(None, "removal_not_held: No removal of this dispute holds on its hash.")
            else:
                try:
                    removal_lift(hash_id=dispute.hash_id, reason=form.cleaned_data["reason"], actor=request.user)
                except CodedError as exc:
                    form.add_error(None, f"{exc.code}: {exc.message}")
                else:
                    messages.success(request, f"The removal of hash {dispute.hash_id} is lifted.")
                    return redirect(reverse("admin:hashes_dispute_change", args=[dispute.pk]))
        context = {**self.admin_site.each_context(request), **self.evidence(dispute), "dispute": dispute,
                   "original": dispute, "lift_form": form, "opts": self.model._meta,
                   "title": f"Lift the removal of hash {dispute.hash_id}"}
        return TemplateResponse(request, "admin/hashes/dispute_lift.html", context)
