from django.urls import path

from conversations import chat_views, views

app_name = "conversations"

urlpatterns = [
    path("chats/", views.conversation_list, name="list"),
    path("chats/<uuid:conversation_id>/", chat_views.conversation_detail, name="detail"),
]
