from django.urls import path

from characters import card_views

app_name = "cards"

urlpatterns = [
    path("characters/import/", card_views.card_import, name="import"),
    path("characters/<slug:slug>/export/<str:fmt>/", card_views.card_download, name="export"),
]
