from django.urls import path

from characters import views

app_name = "characters"

urlpatterns = [
    path("", views.gallery, name="gallery"),
    path("characters/<slug:slug>/", views.character_detail, name="detail"),
    path("account/", views.account, name="account"),
]
