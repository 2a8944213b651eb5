from django.http import HttpRequest, HttpResponse


def conversation_list(request: HttpRequest) -> HttpResponse:
    return HttpResponse("list")
