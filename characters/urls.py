from django.urls import path

from characters import views

app_name = "characters"

urlpatterns = [
    path("", views.gallery, name="gallery"),
    path("characters/<slug:slug>/", views.character_detail, name="detail"),
    path("account/", views.account, name="account"),
    path("account/personas/new/", views.persona_create, name="persona_create"),
    path("account/personas/<int:persona_id>/edit/", views.persona_edit, name="persona_edit"),
    path("account/personas/<int:persona_id>/delete/", views.persona_delete, name="persona_delete"),
    path(
        "account/personas/<int:persona_id>/default/",
        views.persona_make_default,
        name="persona_default",
    ),
]
