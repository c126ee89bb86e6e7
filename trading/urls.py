from django.urls import path

from trading import views

app_name = "trading"
urlpatterns = [
    path("", views.home, name="home"),
    path("instrument/<str:symbol>/", views.instrument, name="instrument"),
    path("strategy/<str:strategy_id>/", views.strategy, name="strategy"),
    path("strategy/<str:strategy_id>/start/", views.strategy_action, {"action": "start"}, name="strategy_start"),
    path("strategy/<str:strategy_id>/stop/", views.strategy_action, {"action": "stop"}, name="strategy_stop"),
    path("strategy/<str:strategy_id>/params/", views.strategy_params, name="strategy_params"),
    path("strategy/<str:strategy_id>/rollback/", views.strategy_rollback, name="strategy_rollback"),
    path("ticket/", views.ticket, name="ticket"),
    path("orders/cancel/", views.cancel_order, name="cancel_order"),
    path("orders/cancel-all/", views.cancel_all, name="cancel_all"),
    path("blotter/", views.blotter, name="blotter"),
    path("blotter.csv", views.blotter_csv, name="blotter_csv"),
]
