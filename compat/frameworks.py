"""The framework matrix: real framework calls, run inside that framework's own venv.

`python compat/frameworks.py SUITE...` with SUITE among `langchain`, `instructor`,
`litellm`, `pydantic_ai`, `agents`, `llamaindex`. `compat/run_frameworks.py` runs it with the
environment that sends every call through a replay proxy: HTTPS_PROXY/HTTP_PROXY, the CA
bundle, fake keys, `REPLAY_OLLAMA_URL` (the reverse-mode proxy in front of "local" Ollama)
and the offline settings of docs/frameworks.md. Each check prints `ok NAME` or `FAIL NAME:
error`; the exit status is the number of failures (capped at 100). A check of an agent also
asserts that its tool ran exactly once: a synthetic model calls a tool, gets its result, and
answers, so every agent ends after one tool round.

This file imports only the frameworks it runs, so each venv needs only its own suite's
packages. Nothing here imports replay.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, Field

OLLAMA = os.environ.get("REPLAY_OLLAMA_URL", "http://127.0.0.1:11434")
QUESTION = "What is the weather in Oslo today?"
TEXT = "Jane Doe, 34, lives at 1 Main St, Springfield; reach her at jane@example.com."
CALLS: list[str] = []


class Address(BaseModel):
    street: str
    city: str


class Person(BaseModel):
    """A person mentioned in the text."""

    name: str = Field(description="full name")
    age: int = Field(ge=0, le=130)
    email: str | None = None
    tags: list[str] = []
    address: Address


class Weather(BaseModel):
    city: str
    summary: str
    celsius: float = Field(ge=-60, le=60)


def get_weather(city: str) -> str:
    """Get the current weather for a city."""
    CALLS.append(city)
    return f"It is 9 degrees and raining in {city}."


def one_tool_round() -> None:
    assert len(CALLS) == 1, f"the tool ran {len(CALLS)} times, not once"
    CALLS.clear()


Check = Callable[[], object]
CHECKS: dict[str, dict[str, Check]] = {}


def check(suite: str) -> Callable[[Check], Check]:
    def register(fn: Check) -> Check:
        CHECKS.setdefault(suite, {})[fn.__name__] = fn
        return fn

    return register


# -- LangChain -----------------------------------------------------------------------------


def _langchain_models() -> dict[str, Any]:
    from langchain_anthropic import ChatAnthropic
    from langchain_openai import ChatOpenAI

    return {
        "openai": ChatOpenAI(model="gpt-4o-mini", max_retries=0),
        "anthropic": ChatAnthropic(model="claude-haiku-4-5", max_retries=0),
    }


def _langchain_tool_round(llm: Any) -> None:
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_core.tools import tool

    weather = tool(get_weather)
    bound = llm.bind_tools([weather])
    messages: list[Any] = [HumanMessage(QUESTION)]
    first = bound.invoke(messages)
    assert first.tool_calls, "no tool call"
    messages.append(first)
    for call in first.tool_calls:
        messages.append(ToolMessage(weather.invoke(call["args"]), tool_call_id=call["id"]))
    final = bound.invoke(messages)
    assert not final.tool_calls and final.text, "no final text"
    one_tool_round()


for _provider in ("openai", "anthropic"):

    def _invoke(provider: str = _provider) -> object:
        out = _langchain_models()[provider].invoke("Say hello")
        assert out.text
        return out.text

    def _stream(provider: str = _provider) -> object:
        text = "".join(c.text for c in _langchain_models()[provider].stream("Count to three"))
        assert text
        return text

    def _tools(provider: str = _provider) -> object:
        _langchain_tool_round(_langchain_models()[provider])
        return "one tool round"

    def _structured(provider: str = _provider) -> object:
        llm = _langchain_models()[provider]
        methods = ["function_calling", "json_schema"]
        if provider == "openai":
            methods.append("json_mode")
        out = []
        for method in methods:
            prompt = TEXT
            if method == "json_mode":  # json_mode leaves the schema to the prompt
                prompt += (
                    f"\nAnswer in JSON with this schema: {json.dumps(Person.model_json_schema())}"
                )
            person = llm.with_structured_output(Person, method=method).invoke(prompt)
            assert isinstance(person, Person), (method, person)
            out.append(method)
        return out

    for _name, _fn in (
        ("invoke", _invoke),
        ("stream", _stream),
        ("bind_tools", _tools),
        ("with_structured_output", _structured),
    ):
        _fn.__name__ = f"{_provider}_{_name}"
        check("langchain")(_fn)


@check("langchain")
def openai_format_instructions() -> object:
    from langchain_core.output_parsers import JsonOutputParser, PydanticOutputParser
    from langchain_core.prompts import ChatPromptTemplate

    llm = _langchain_models()["openai"]
    out = []
    for parser in (PydanticOutputParser(pydantic_object=Person), JsonOutputParser()):
        prompt = ChatPromptTemplate.from_messages(
            [("system", "Extract the person.\n{format_instructions}"), ("user", "{text}")]
        ).partial(format_instructions=parser.get_format_instructions())
        out.append((prompt | llm | parser).invoke({"text": TEXT}))
    assert isinstance(out[0], Person) and isinstance(out[1], dict)
    return out


# -- instructor ----------------------------------------------------------------------------

INSTRUCTOR_MODES = {
    "openai": ("JSON", "MD_JSON", "TOOLS", "TOOLS_STRICT", "JSON_SCHEMA", "PARALLEL_TOOLS"),
    "anthropic": ("ANTHROPIC_JSON", "ANTHROPIC_TOOLS"),
}


def _instructor(provider: str, mode: str) -> Check:
    def run() -> object:
        import instructor

        messages = [{"role": "user", "content": TEXT}]
        if provider == "anthropic":
            import anthropic

            claude = anthropic.Anthropic(max_retries=0)
            create = instructor.from_anthropic(claude, mode=instructor.Mode[mode]).messages.create
            fields: dict[str, Any] = {"model": "claude-haiku-4-5", "max_tokens": 1024}
        else:
            import openai

            client = instructor.from_openai(
                openai.OpenAI(max_retries=0), mode=instructor.Mode[mode]
            )
            create = client.chat.completions.create
            fields = {"model": "gpt-4o-mini"}
        if mode == "PARALLEL_TOOLS":
            from collections.abc import Iterable

            wanted: Any = Iterable[Person | Weather]
            got = list(create(response_model=wanted, messages=messages, **fields))
            assert got and all(isinstance(p, Person | Weather) for p in got)
            return got
        person = create(response_model=Person, max_retries=1, messages=messages, **fields)
        assert isinstance(person, Person)
        return person

    run.__name__ = f"{provider}_{mode}"
    return run


for _provider, _modes in INSTRUCTOR_MODES.items():
    for _mode in _modes:
        check("instructor")(_instructor(_provider, _mode))


@check("instructor")
def openai_partial_stream() -> object:
    import instructor
    import openai

    client = instructor.from_openai(openai.OpenAI(max_retries=0), mode=instructor.Mode.TOOLS)
    parts = list(
        client.chat.completions.create_partial(
            model="gpt-4o-mini", response_model=Person, messages=[{"role": "user", "content": TEXT}]
        )
    )
    assert parts and parts[-1].name
    return parts[-1]


# -- LiteLLM -------------------------------------------------------------------------------

LITELLM_MODELS = {
    "openai": ("openai/gpt-4o-mini", {}),
    "anthropic": ("anthropic/claude-haiku-4-5", {}),
    "gemini": ("gemini/gemini-2.5-flash", {}),
    "ollama": ("ollama/llama3.2", {"api_base": OLLAMA}),
    "ollama_chat": ("ollama_chat/llama3.2", {"api_base": OLLAMA}),
}
LITELLM_EMBEDDINGS = {
    "openai": ("openai/text-embedding-3-small", {}, 1536),
    "gemini": ("gemini/text-embedding-004", {}, 768),
    "ollama": ("ollama/nomic-embed-text", {"api_base": OLLAMA}, 768),
}
HELLO = [{"role": "user", "content": "Say hello"}]


def _litellm_checks(name: str, model: str, extra: dict[str, Any]) -> None:
    def completion() -> object:
        import litellm

        out = litellm.completion(model=model, messages=HELLO, **extra)
        assert out.choices[0].message.content
        return out.choices[0].message.content

    def stream() -> object:
        import litellm

        chunks = litellm.completion(model=model, messages=HELLO, stream=True, **extra)
        text = "".join(c.choices[0].delta.content or "" for c in chunks)
        assert text
        return text

    def acompletion() -> object:
        import litellm

        async def run() -> str:
            out = await litellm.acompletion(model=model, messages=HELLO, **extra)
            text = out.choices[0].message.content
            chunks = await litellm.acompletion(model=model, messages=HELLO, stream=True, **extra)
            async for chunk in chunks:
                text += chunk.choices[0].delta.content or ""
            return str(text)

        text = asyncio.run(run())
        assert text
        return text

    def tools() -> object:
        import litellm

        spec = {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Get the weather",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
        messages: list[Any] = [{"role": "user", "content": QUESTION}]
        first = litellm.completion(model=model, messages=messages, tools=[spec], **extra)
        calls = first.choices[0].message.tool_calls
        assert calls, "no tool call"
        messages.append(first.choices[0].message.model_dump())
        for call in calls:
            result = get_weather(**json.loads(call.function.arguments))
            messages.append(
                {"role": "tool", "tool_call_id": call.id, "name": "get_weather", "content": result}
            )
        final = litellm.completion(model=model, messages=messages, tools=[spec], **extra)
        assert final.choices[0].message.content and not final.choices[0].message.tool_calls
        one_tool_round()
        return "one tool round"

    # `ollama/` models go to /api/generate, which has no tools: LiteLLM drops them there
    # (`ollama_chat/` models use /api/chat and its tools).
    for fn in (completion, stream, acompletion) + ((tools,) if name != "ollama" else ()):
        fn.__name__ = f"{name}_{fn.__name__}"
        check("litellm")(fn)


for _name, (_model, _extra) in LITELLM_MODELS.items():
    _litellm_checks(_name, _model, _extra)


def _litellm_embedding(name: str, model: str, extra: dict[str, Any], size: int) -> None:
    def embedding() -> object:
        import litellm

        out = litellm.embedding(model=model, input=["a", "b"], **extra)
        sizes = [len(d["embedding"]) for d in out.data]
        assert sizes == [size, size], sizes
        return sizes

    embedding.__name__ = f"{name}_embedding"
    check("litellm")(embedding)


for _name, (_model, _extra, _size) in LITELLM_EMBEDDINGS.items():
    _litellm_embedding(_name, _model, _extra, _size)


# -- pydantic-ai ---------------------------------------------------------------------------


QUESTIONS = (QUESTION, "Will it rain in Bergen tomorrow?", "How warm is it in Paris?")


def _pydantic_agent(model: str) -> Check:
    def run() -> object:
        from pydantic_ai import Agent

        # With an output_type the agent forces a tool call each turn (`tool_choice:
        # required`) among its tool and `final_result`: the seed picks one first, so a run
        # may end at once. Every run must end with a valid output after at most one round
        # of its tool, and some run must take that round.
        agent = Agent(model, output_type=Weather, tools=[get_weather])
        rounds = []
        for question in QUESTIONS:
            result = agent.run_sync(question)
            assert isinstance(result.output, Weather)
            rounds.append(len(CALLS))
            CALLS.clear()
        assert max(rounds) == 1 and set(rounds) <= {0, 1}, rounds
        return rounds

    run.__name__ = f"agent_{model.split(':')[0]}"
    return run


for _model in ("openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"):
    check("pydantic_ai")(_pydantic_agent(_model))


@check("pydantic_ai")
def agent_text_output_streamed() -> object:
    from pydantic_ai import Agent

    agent = Agent("openai:gpt-4o-mini", tools=[get_weather])

    async def run() -> str:
        async with agent.run_stream(QUESTION) as result:
            return "".join([piece async for piece in result.stream_text(delta=True)])

    text = asyncio.run(run())
    assert text
    one_tool_round()
    return text


# -- OpenAI Agents SDK ---------------------------------------------------------------------


def _agents_agent(output_type: type | None = None) -> Any:
    from agents import Agent, function_tool, set_tracing_disabled

    set_tracing_disabled(True)  # traces would go to api.openai.com/v1/traces (a miss)
    return Agent(
        name="weather",
        instructions="Answer questions about the weather.",
        model="gpt-4o-mini",
        tools=[function_tool(get_weather)],
        output_type=output_type,
    )


@check("agents")
def run_sync() -> object:
    from agents import Runner

    result = Runner.run_sync(_agents_agent(), QUESTION)
    assert isinstance(result.final_output, str) and result.final_output
    one_tool_round()
    return result.final_output


@check("agents")
def run_sync_output_type() -> object:
    from agents import Runner

    result = Runner.run_sync(_agents_agent(Weather), QUESTION)
    assert isinstance(result.final_output, Weather)
    one_tool_round()
    return result.final_output


@check("agents")
def run_streamed() -> object:
    from agents import Runner

    async def run() -> object:
        from agents import set_default_openai_client
        from openai import AsyncOpenAI

        set_default_openai_client(AsyncOpenAI())  # a client of this event loop
        result = Runner.run_streamed(_agents_agent(), QUESTION)
        kinds = [event.type async for event in result.stream_events()]
        assert "raw_response_event" in kinds
        return result.final_output

    output = asyncio.run(run())
    assert isinstance(output, str) and output
    one_tool_round()
    return output


@check("agents")
def chat_completions_model() -> object:
    from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool
    from openai import AsyncOpenAI

    agent = Agent(
        name="weather",
        model=OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=AsyncOpenAI()),
        tools=[function_tool(get_weather)],
    )
    _agents_agent()  # tracing off
    result = Runner.run_sync(agent, QUESTION)
    assert isinstance(result.final_output, str) and result.final_output
    one_tool_round()
    return result.final_output


# -- LlamaIndex ----------------------------------------------------------------------------


def _llama_llm() -> Any:
    from llama_index.llms.openai import OpenAI

    return OpenAI(model="gpt-4o-mini", max_retries=0)


@check("llamaindex")
def complete_and_stream() -> object:
    llm = _llama_llm()
    text = llm.complete("Say hello").text
    streamed = "".join(r.delta or "" for r in llm.stream_complete("Count to three"))
    assert text and streamed
    return text


@check("llamaindex")
def predict_and_call() -> object:
    from llama_index.core.tools import FunctionTool

    response = _llama_llm().predict_and_call([FunctionTool.from_defaults(get_weather)], QUESTION)
    assert "raining" in str(response)
    one_tool_round()
    return str(response)


@check("llamaindex")
def function_agent() -> object:
    from llama_index.core.agent.workflow import FunctionAgent

    agent = FunctionAgent(tools=[get_weather], llm=_llama_llm())

    async def run() -> str:
        return str(await agent.run(QUESTION))

    text = asyncio.run(run())
    assert text
    one_tool_round()
    return text


@check("llamaindex")
def structured_predict() -> object:
    from llama_index.core.prompts import PromptTemplate

    person = _llama_llm().structured_predict(Person, PromptTemplate("Extract: {text}"), text=TEXT)
    assert isinstance(person, Person)
    return person


@check("llamaindex")
def embedding() -> object:
    from llama_index.embeddings.openai import OpenAIEmbedding

    vector = OpenAIEmbedding(model="text-embedding-3-small").get_text_embedding("hello")
    assert len(vector) == 1536
    return len(vector)


def main(suites: list[str]) -> int:
    failures = 0
    for suite in suites:
        for name, fn in CHECKS[suite].items():
            CALLS.clear()
            try:
                out = fn()
                print(f"ok    {suite}.{name}: {out!r:.100}", flush=True)
            except Exception as e:  # report every check, then fail
                failures += 1
                print(f"FAIL  {suite}.{name}: {type(e).__name__}: {e}", flush=True)
                traceback.print_exc(limit=-3, file=sys.stdout)
    return min(failures, 100)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:] or sorted(CHECKS)))
