from django.urls import path

from compliance import views

app_name = "compliance"
urlpatterns = [
    path("", views.home, name="home"),
    path("audit/", views.audit_trail, name="audit"),
    path("chain/", views.chain, name="chain"),
    path("chain/verify/", views.verify_chain, name="verify_chain"),
    path("exports/", views.export_list, name="exports"),
    path("exports/jobs/", views.export_jobs_fragment, name="export_jobs"),
    path("exports/<int:job_id>/download/", views.export_download, name="export_download"),
    path("reconciliation/", views.reconciliation_page, name="reconciliation"),
    path("reconciliation/run/", views.run_reconciliation, name="run_reconciliation"),
    path("reconciliation/breaks/<int:break_id>/resolve/", views.resolve_break, name="resolve_break"),
    path("clock/", views.clock, name="clock"),
    path("clock/measure/", views.measure_clocks, name="measure_clocks"),
]
