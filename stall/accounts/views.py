from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from stall.core.errors import StallError
from stall.core.forms import form_add_stall_error
from stall.core.limits import RateLimited, client_address

from .forms import EmailAuthenticationForm, SignupForm
from .services import signup_attempt_count, user_create


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

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.rate_limited is not None:
            response.status_code = 429
            return _limited(response, form.rate_limited)
        response.status_code = 400
        return response


login_view = LoginView.as_view()
logout_view = auth_views.LogoutView.as_view()
