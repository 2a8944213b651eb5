from django.urls import path

from conversations import views

app_name = "conversations"

urlpatterns = [
    path("chats/", views.conversation_list, name="list"),
    path("chats/<uuid:conversation_id>/", views.conversation_detail, name="detail"),
]
