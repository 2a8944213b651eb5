from uuid import UUID

from django.http import HttpRequest, HttpResponse


def conversation_detail(request: HttpRequest, conversation_id: UUID) -> HttpResponse:
    return HttpResponse(str(conversation_id))
