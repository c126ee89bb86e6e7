from django.urls import path

from trading import views

app_name = "trading"
urlpatterns = [path("", views.home, name="home")]
