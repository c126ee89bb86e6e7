from django.urls import path

from riskdesk import views

app_name = "riskdesk"
urlpatterns = [path("", views.home, name="home")]
