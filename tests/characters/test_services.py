import pytest
from django.core.exceptions import ValidationError

from characters.exceptions import PersonaLimitReached, PersonaNotOwned
from characters.models import Persona
from characters.services import (
    PERSONAS_PER_USER,
    persona_create,
    persona_delete,
    persona_set_default,
    persona_update,
)


def defaults(user):
    return list(Persona.objects.filter(owner=user, is_default=True).values_list("name", flat=True))


def test_first_persona_becomes_the_default(alice):
    first = persona_create(owner=alice, name="Sam", description="A traveller.")
    second = persona_create(owner=alice, name="Kit")

    assert first.is_default
    assert not second.is_default
    assert defaults(alice) == ["Sam"]


def test_creating_a_persona_as_default_moves_the_flag(alice):
    persona_create(owner=alice, name="Sam")
    persona_create(owner=alice, name="Kit", is_default=True)

    assert defaults(alice) == ["Kit"]


def test_switching_default_leaves_exactly_one_default(alice):
    sam = persona_create(owner=alice, name="Sam")
    kit = persona_create(owner=alice, name="Kit")

    persona_set_default(owner=alice, persona=kit)
    assert defaults(alice) == ["Kit"]
    persona_set_default(owner=alice, persona=sam)
    persona_set_default(owner=alice, persona=sam)
    assert defaults(alice) == ["Sam"]


def test_defaults_of_different_users_are_independent(alice, bob):
    persona_create(owner=alice, name="Sam")
    bobs = persona_create(owner=bob, name="Bobby")
    persona_create(owner=bob, name="Robert")

    persona_set_default(owner=bob, persona=bobs)

    assert defaults(alice) == ["Sam"]
    assert defaults(bob) == ["Bobby"]


def test_deleting_the_default_promotes_the_oldest_remaining_persona(alice):
    sam = persona_create(owner=alice, name="Sam")
    persona_create(owner=alice, name="Kit")
    persona_create(owner=alice, name="Lee")

    persona_delete(owner=alice, persona=sam)

    assert defaults(alice) == ["Kit"]


def test_deleting_the_last_persona_leaves_none(alice):
    sam = persona_create(owner=alice, name="Sam")

    persona_delete(owner=alice, persona=sam)

    assert not Persona.objects.filter(owner=alice).exists()


def test_update_changes_name_and_description_and_keeps_the_default(alice):
    sam = persona_create(owner=alice, name="Sam")

    persona_update(owner=alice, persona=sam, name="Samantha", description="A pilot.")

    sam.refresh_from_db()
    assert (sam.name, sam.description, sam.is_default) == ("Samantha", "A pilot.", True)


def test_invalid_persona_is_refused_without_writing(alice):
    with pytest.raises(ValidationError) as excinfo:
        persona_create(owner=alice, name="x" * 101)
    assert "name" in excinfo.value.message_dict
    with pytest.raises(ValidationError):
        persona_create(owner=alice, name="")
    with pytest.raises(ValidationError):
        persona_create(owner=alice, name="Sam", description="x" * 4001)

    assert not Persona.objects.exists()


def test_number_of_personas_is_bounded(alice):
    Persona.objects.bulk_create(
        Persona(owner=alice, name=f"P{i}") for i in range(PERSONAS_PER_USER)
    )

    with pytest.raises(PersonaLimitReached):
        persona_create(owner=alice, name="One too many")
    assert Persona.objects.filter(owner=alice).count() == PERSONAS_PER_USER


def test_another_users_persona_cannot_be_changed(alice, bob):
    bobs = persona_create(owner=bob, name="Bobby")
    persona_create(owner=bob, name="Robert", is_default=True)

    with pytest.raises(PersonaNotOwned):
        persona_update(owner=alice, persona=bobs, name="Hacked", description="")
    with pytest.raises(PersonaNotOwned):
        persona_set_default(owner=alice, persona=bobs)
    with pytest.raises(PersonaNotOwned):
        persona_delete(owner=alice, persona=bobs)

    bobs.refresh_from_db()
    assert bobs.name == "Bobby"
    assert defaults(bob) == ["Robert"]
