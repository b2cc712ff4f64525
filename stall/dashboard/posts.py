"""Dashboard pages for posts (list, write, publish, add images) and the tip jar (settings and the
tips received). Thin views over stall.content's services; another store's post is a 404."""

import re

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count, Q
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from stall.catalog.models import ProductStatus
from stall.content import selectors as content_selectors
from stall.content import services as content_services
from stall.content.preview import MORE_MARKER
from stall.core.errors import NotFound, StallError
from stall.core.forms import form_add_stall_error
from stall.core.money import format_money, parse_amount

from .embeds import embed_button
from .forms import AmountField, _AmountsForm, amount_for_input
from .memberships import post_tiers_form
from .views import _locale, _render, _store

TIPS_PER_PAGE = 50


class PostForm(_AmountsForm):
    title = forms.CharField(label="Title", max_length=120)
    slug = forms.CharField(
        label="Address", max_length=80, required=False,
        help_text="Used in the post's link. Leave empty to make one from the title.",
        widget=forms.TextInput(attrs={"autocapitalize": "none", "autocomplete": "off", "spellcheck": "false"}),
    )
    body = forms.CharField(
        label="Text", required=False, strip=False, widget=forms.Textarea(attrs={"rows": 18}),
        help_text=(
            f"Markdown. Everything above a line that says {MORE_MARKER} is the free preview; without it, "
            "the first two paragraphs are. Images: upload them below, they are added as ![text](link)."
        ),
    )
    amount = AmountField(
        label="Price", help_text="0 makes the post free. Any price works, even 0.01: readers pay small amounts from their wallet or tab.",
    )
    status = forms.ChoiceField(label="Status", choices=ProductStatus.choices, initial=ProductStatus.DRAFT,
                               help_text="Only published posts are shown, sold and in the feed.")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["amount"].label = f"Price ({self.currency})"
        if not self.is_bound and "amount" not in self.initial:
            self.initial["amount"] = "0"

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        return {"title": data["title"], "slug": data["slug"], "body": data["body"], "amount": data["amount"] or 0,
                "status": data["status"]}


class PostImageForm(forms.Form):
    image = forms.FileField(label="Add an image", widget=forms.ClearableFileInput(attrs={"accept": "image/*"}),
                            help_text="PNG, JPEG, GIF or WebP, up to 10 MB. It is added at the end of the text; move it where you like.",
                            error_messages={"required": "Choose an image to upload."})
    alt = forms.CharField(label="Describe the image", max_length=120, required=False,
                          help_text="For readers who cannot see it.")


class TipJarForm(_AmountsForm):
    enabled = forms.BooleanField(label="Take tips on the store and product pages", required=False)
    title = forms.CharField(label="Title", max_length=120, initial="Leave a tip")
    presets = forms.CharField(label="Preset amounts", required=False, max_length=200,
                              help_text="Up to six amounts, separated by spaces, e.g. “1 3 5”.")
    minimum = AmountField(label="Smallest tip")
    maximum = AmountField(label="Largest tip")
    goal_amount = AmountField(label="Goal", required=False, help_text="Optional: shows a progress bar of the tips so far.")
    goal_title = forms.CharField(label="What the goal is for", max_length=120, required=False)
    show_supporters = forms.BooleanField(
        label="Show a supporters list", required=False,
        help_text="Only tippers who tick “show my name” appear by name and message; the others are “Someone”.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("minimum", "maximum", "goal_amount"):
            self.fields[name].label += f" ({self.currency})"

    def clean_presets(self):
        text = (self.cleaned_data.get("presets") or "").replace(", ", " ").replace(";", " ")
        amounts = []
        for part in re.split(r"\s+", text.strip()) if text.strip() else []:
            try:
                amounts.append(parse_amount(part, self.currency, locale=self.locale, param="presets"))
            except StallError as exc:
                raise forms.ValidationError(exc.message) from None
        return amounts


def _post(store, post_id):
    try:
        return content_selectors.post_get(store=store, post_id=post_id)
    except NotFound:
        raise Http404 from None


@login_required
def posts(request, slug):
    store = _store(request, slug)
    rows = content_selectors.posts_for_store(store=store).annotate(
        unlocks=Count("product__entitlements", filter=Q(product__entitlements__revoked_at__isnull=True))
    )
    return _render(request, "dashboard/posts.html", {"store": store, "section": "posts", "posts": rows})


@login_required
@require_http_methods(["GET", "POST"])
def post_new(request, slug):
    store = _store(request, slug)
    form = PostForm(request.POST or None, currency=store.currency, locale=_locale(request))
    if request.method == "POST" and form.is_valid():
        try:
            post = content_services.post_create(store=store, **form.service_kwargs())
        except StallError as exc:
            form_add_stall_error(form, exc)
        else:
            messages.success(request, f"“{post.title}” saved.")
            return redirect("dashboard:post", slug=store.slug, post_id=post.pk)
    return _render(request, "dashboard/post_new.html", {"store": store, "section": "posts", "form": form}, form)


def _post_page(request, store, post, *, form=None, image_form=None, status=200):
    locale = _locale(request)
    if form is None:
        form = PostForm(currency=store.currency, locale=locale, initial={
            "title": post.title, "slug": post.slug, "body": post.body, "status": post.status,
            "amount": amount_for_input(post.amount, store.currency, locale),
        })
    split = content_selectors.post_split_for(post)
    context = {
        "store": store, "section": "posts", "post": post, "form": form, "image_form": image_form or PostImageForm(),
        "split": split, "tiers_form": post_tiers_form(store, post),
        "embed": embed_button(request, path=reverse("content:post", args=[store.slug, post.slug]),
                              label=f"Read {post.title}"),
    }
    response = _render(request, "dashboard/post_edit.html", context)
    response.status_code = status
    return response


@login_required
@require_http_methods(["GET", "POST"])
def post_edit(request, slug, post_id):
    store = _store(request, slug)
    post = _post(store, post_id)
    if request.method == "GET":
        return _post_page(request, store, post)
    form = PostForm(request.POST, currency=store.currency, locale=_locale(request))
    if form.is_valid():
        try:
            post = content_services.post_update(post=post, **form.service_kwargs())
        except StallError as exc:
            form_add_stall_error(form, exc)
        else:
            messages.success(request, "Post saved.")
            return redirect("dashboard:post", slug=store.slug, post_id=post.pk)
    return _post_page(request, store, post, form=form, status=400)


@login_required
@require_POST
def post_publish(request, slug, post_id):
    store = _store(request, slug)
    post = _post(store, post_id)
    post = content_services.post_publish(post=post)
    messages.success(request, f"“{post.title}” is published.")
    return redirect("dashboard:post", slug=store.slug, post_id=post.pk)


@login_required
@require_POST
def post_image(request, slug, post_id):
    store = _store(request, slug)
    post = _post(store, post_id)
    form = PostImageForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            content_services.post_image_add(post=post, upload=form.cleaned_data["image"], alt=form.cleaned_data["alt"])
        except StallError as exc:
            form_add_stall_error(form, exc)
        else:
            messages.success(request, "Image added at the end of the text.")
            return redirect(reverse("dashboard:post", args=[store.slug, post.pk]) + "#id_body")
    return _post_page(request, store, post, image_form=form, status=400)


@login_required
@require_http_methods(["GET", "POST"])
def tips(request, slug):
    store = _store(request, slug)
    locale = _locale(request)
    jar = content_selectors.tip_jar_get(store=store)
    values = (
        {f: getattr(jar, f) for f in ("enabled", "title", "presets", "minimum", "maximum", "goal_amount", "goal_title", "show_supporters")}
        if jar else {"enabled": False, "title": "Leave a tip", "goal_amount": None, "goal_title": "", "show_supporters": True,
                     **content_services.tip_jar_defaults(store.currency)}
    )
    initial = {
        **values,
        "presets": " ".join(amount_for_input(p, store.currency, locale) for p in values["presets"]),
        **{k: amount_for_input(values[k], store.currency, locale) for k in ("minimum", "maximum", "goal_amount")},
    }
    form = TipJarForm(request.POST or None, currency=store.currency, locale=locale, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            content_services.tip_jar_update(store=store, **form.cleaned_data)
        except StallError as exc:
            form_add_stall_error(form, exc)
        else:
            messages.success(request, "Tip jar saved." if form.cleaned_data["enabled"] else "Tip jar saved; it is off.")
            return redirect("dashboard:tips", slug=store.slug)
    before = request.GET.get("before", "")
    found = content_selectors.tips_for_store(store=store)
    if before:
        found = found.filter(pk__lt=before)
    page = list(found[: TIPS_PER_PAGE + 1])
    older = page[TIPS_PER_PAGE - 1].pk if len(page) > TIPS_PER_PAGE else None
    context = {
        "store": store, "section": "tips", "form": form, "jar": jar, "tips": page[:TIPS_PER_PAGE], "older": older,
        "before": before, "raised": content_selectors.tip_jar_raised(jar=jar) if jar else 0,
        "raised_label": format_money(content_selectors.tip_jar_raised(jar=jar), store.currency, locale) if jar else "",
        "embed": embed_button(request, path=reverse("content:tip", args=[store.slug]),
                              label=jar.title if jar and jar.title else "Leave a tip"),
    }
    return _render(request, "dashboard/tips.html", context, form)
