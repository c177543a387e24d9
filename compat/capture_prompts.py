"""Send the structured-output calls of instructor and LangChain to `capture_server.py`.

Run in a venv with compat/constraints-langchain.txt installed (instructor, langchain-openai,
langchain-anthropic): `python compat/capture_prompts.py PORT`. Each call carries an
`x-capture` header naming it, so the server saves its body under that name; the call's
result (parsed by the framework from replay's synthetic answer) is printed, and the exit
status is non-zero if any call raised.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import anthropic
import instructor
import openai
from frameworks import TEXT, Person  # compat/frameworks.py: the same model
from langchain_anthropic import ChatAnthropic
from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_openai import ChatOpenAI

BASE = f"http://127.0.0.1:{sys.argv[1] if len(sys.argv) > 1 else 18931}"


def oai(label: str) -> openai.OpenAI:
    headers = {"x-capture": label}
    return openai.OpenAI(base_url=BASE + "/v1", api_key="sk-test", default_headers=headers)


def ant(label: str) -> anthropic.Anthropic:
    headers = {"x-capture": label}
    return anthropic.Anthropic(base_url=BASE, api_key="sk-ant-test", default_headers=headers)


def lc_openai(label: str, **kw: Any) -> ChatOpenAI:
    headers = {"x-capture": label}
    return ChatOpenAI(
        model="gpt-4o-mini", base_url=BASE + "/v1", api_key="sk-test", default_headers=headers, **kw
    )


def lc_anthropic(label: str) -> ChatAnthropic:
    headers = {"x-capture": label}
    return ChatAnthropic(
        model="claude-sonnet-4-5", base_url=BASE, api_key="sk-ant-test", default_headers=headers
    )


def instructor_openai(mode: str) -> Callable[[str], object]:
    def run(label: str) -> object:
        client = instructor.from_openai(oai(label), mode=getattr(instructor.Mode, mode))
        return client.chat.completions.create(
            model="gpt-4o-mini",
            response_model=Person,
            max_retries=1,
            messages=[{"role": "user", "content": TEXT}],
        )

    return run


def instructor_anthropic(mode: str) -> Callable[[str], object]:
    def run(label: str) -> object:
        client = instructor.from_anthropic(ant(label), mode=getattr(instructor.Mode, mode))
        return client.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=1024,
            response_model=Person,
            max_retries=1,
            messages=[{"role": "user", "content": TEXT}],
        )

    return run


def structured(make: Callable[[str], Any], method: str) -> Callable[[str], object]:
    def run(label: str) -> object:
        prompt = TEXT
        if method == "json_mode":  # json_mode leaves the schema to the prompt
            schema = json.dumps(Person.model_json_schema())
            prompt += f"\nAnswer in JSON with this schema: {schema}"
        return make(label).with_structured_output(Person, method=method).invoke(prompt)

    return run


def parsed(make: Callable[[str], Any], parser: Any) -> Callable[[str], object]:
    def run(label: str) -> object:
        prompt = ChatPromptTemplate.from_messages(
            [("system", "Extract the person.\n{format_instructions}"), ("user", "{text}")]
        ).partial(format_instructions=parser.get_format_instructions())
        return (prompt | make(label) | parser).invoke({"text": TEXT})

    return run


def json_mode_openai(label: str) -> ChatOpenAI:
    return lc_openai(label, model_kwargs={"response_format": {"type": "json_object"}})


CALLS: dict[str, Callable[[str], object]] = {
    **{f"instructor-openai-{m}": instructor_openai(m) for m in ("JSON", "MD_JSON", "TOOLS")},
    "instructor-openai-JSON_SCHEMA": instructor_openai("JSON_SCHEMA"),
    **{
        f"instructor-anthropic-{m}": instructor_anthropic(m)
        for m in ("ANTHROPIC_JSON", "ANTHROPIC_TOOLS")
    },
    **{
        f"langchain-openai-structured-{m}": structured(lc_openai, m)
        for m in ("function_calling", "json_schema", "json_mode")
    },
    **{
        f"langchain-anthropic-structured-{m}": structured(lc_anthropic, m)
        for m in ("function_calling", "json_schema")
    },
    "langchain-openai-pydantic-parser": parsed(
        lc_openai, PydanticOutputParser(pydantic_object=Person)
    ),
    "langchain-openai-json-parser": parsed(lc_openai, JsonOutputParser(pydantic_object=Person)),
    "langchain-openai-json-parser-noschema": parsed(lc_openai, JsonOutputParser()),
    "langchain-anthropic-pydantic-parser": parsed(
        lc_anthropic, PydanticOutputParser(pydantic_object=Person)
    ),
    "langchain-openai-json-mode-parser": parsed(
        json_mode_openai, PydanticOutputParser(pydantic_object=Person)
    ),
}


def main() -> int:
    failed = 0
    for label, call in CALLS.items():
        try:
            print(f"ok    {label}: {call(label)!r:.160}")
        except Exception as e:  # report every call, then fail
            failed += 1
            print(f"FAIL  {label}: {type(e).__name__}: {e}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
