from typing import Any

app_name = "cards"

urlpatterns: list[Any] = []
