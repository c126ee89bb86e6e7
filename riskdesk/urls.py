from django.urls import path

from riskdesk import views

app_name = "riskdesk"
urlpatterns = [
    path("", views.home, name="home"),
    path("live/", views.live_panel, name="live"),
    path("limits/<str:scope>/", views.edit_limits, name="edit_limits"),
    path("limits/versions/<int:version_id>/approve/", views.approve_limits, name="approve_limits"),
    path("limits/versions/<int:version_id>/reject/", views.reject_limits, name="reject_limits"),
    path("state/", views.trading_state, name="trading_state"),
    path("alerts/<int:alert_id>/acknowledge/", views.acknowledge_alert, name="acknowledge_alert"),
    path("triggers/<str:scope>/", views.edit_triggers, name="edit_triggers"),
    path("triggers/versions/<int:setting_id>/approve/", views.approve_triggers, name="approve_triggers"),
    path("triggers/versions/<int:setting_id>/reject/", views.reject_triggers, name="reject_triggers"),
    path("var/run/", views.run_var, name="run_var"),
]
