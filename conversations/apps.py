from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    name = "conversations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from companion import dbthread

        dbthread.install()
        # Registers checks and signal receivers.
        from conversations import checks, signout  # noqa: F401
        from conversations.services import usage  # noqa: F401
