from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from stall.core.errors import StallError
from stall.core.forms import form_add_stall_error
from stall.core.limits import RateLimited, client_address

from .forms import EmailAuthenticationForm, RecoveryCodeForm, SignupForm, TwoFactorCodeForm
from .services import signup_attempt_count, user_create
from .two_factor import (
    two_factor_enabled,
    two_factor_pending_clear,
    two_factor_pending_get,
    two_factor_pending_set,
    two_factor_verify,
)


@require_http_methods(["GET", "POST"])
def signup(request):
    if request.user.is_authenticated:
        return redirect("dashboard:home")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            signup_attempt_count(address=client_address(request))
            user = user_create(
                email=form.cleaned_data["email"], name=form.cleaned_data["name"], password=form.cleaned_data["password"]
            )
        except StallError as exc:
            form_add_stall_error(form, exc)
            return _limited(render(request, "accounts/signup.html", {"form": form}, status=exc.status), exc)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("dashboard:home")
    return render(request, "accounts/signup.html", {"form": form}, status=400 if form.errors else 200)


def _limited(response, exc):
    """Tell a client that was refused for asking too often when it may ask again."""
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = EmailAuthenticationForm
    redirect_authenticated_user = True

    def form_valid(self, form):
        """A right password logs in, unless the account has two-factor on: then it asks for a code."""
        user = form.get_user()
        if not two_factor_enabled(user=user):
            return super().form_valid(form)
        two_factor_pending_set(request=self.request, user=user, backend=user.backend, next_url=self.get_success_url())
        return redirect("accounts:login_code")

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.rate_limited is not None:
            response.status_code = 429
            return _limited(response, form.rate_limited)
        response.status_code = 400
        return response


login_view = LoginView.as_view()


@never_cache
@require_http_methods(["GET", "POST"])
def login_code(request):
    """The second step of logging in: the authenticator's code (or a recovery code) for the
    account whose password this session gave in the last few minutes."""
    pending = two_factor_pending_get(request=request)
    if pending is None:
        messages.error(request, "Your log-in waited too long for its code, or was never started. Log in again.")
        return redirect("accounts:login")
    user, state = pending
    code_form = TwoFactorCodeForm(request.POST if "code" in request.POST else None)
    recovery_form = RecoveryCodeForm(request.POST if "recovery-code" in request.POST else None, prefix="recovery")
    form = code_form if code_form.is_bound else recovery_form
    if request.method == "POST" and form.is_valid():
        try:
            two_factor_verify(user=user, code=form.cleaned_data["code"], address=client_address(request))
        except StallError as exc:
            form.add_error("code", exc.message)
            context = {"form": code_form, "recovery_form": recovery_form}
            return _limited(render(request, "accounts/login_code.html", context, status=exc.status), exc)
        two_factor_pending_clear(request=request)
        login(request, user, backend=state["backend"])
        return redirect(state["next"])
    status = 400 if form.is_bound else 200
    return render(request, "accounts/login_code.html", {"form": code_form, "recovery_form": recovery_form}, status=status)
logout_view = auth_views.LogoutView.as_view()
