from django.apps import AppConfig


class RiskdeskConfig(AppConfig):
    name = "riskdesk"
    verbose_name = "Risk desk"
