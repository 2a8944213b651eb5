from django.apps import AppConfig
from django.db.backends.signals import connection_created


class CharactersConfig(AppConfig):
    name = "characters"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from characters.selectors import register_casefold

        connection_created.connect(register_casefold, dispatch_uid="characters.casefold")
