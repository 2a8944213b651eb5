from django.http import HttpRequest, HttpResponse


def gallery(request: HttpRequest) -> HttpResponse:
    return HttpResponse("gallery")


def character_detail(request: HttpRequest, slug: str) -> HttpResponse:
    return HttpResponse(slug)


def account(request: HttpRequest) -> HttpResponse:
    return HttpResponse("account")
