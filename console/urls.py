from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from console import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz", views.healthz, name="healthz"),
    path("status/", views.system_status, name="status"),
    path("trading/", include("trading.urls")),
    path("risk/", include("riskdesk.urls")),
    path("compliance/", include("compliance.urls")),
    path("admin/", admin.site.urls),
]
