"""MCP tools that use models: prompt one, evaluate several."""

# No `from __future__ import annotations` here: the paid tools' Resolve(...) parameters name closures, so their
# annotations must be evaluated where they are written.

from typing import Annotated, Literal

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver import Image
from mcp.types import CallToolResult, ImageContent, TextContent, ToolAnnotations
from pydantic import ConfigDict, Field

from model_customization.deferred_model import DeferredModel
from model_customization.errors import UserError
from model_customization.evaluation.limits import DEFAULT_CONCURRENCY, MAX_CONCURRENCY
from model_customization.providers.local.models import EMBEDDED_MODEL
from model_customization.operations.models import ListModelsRequest, PromptModelRequest
from model_customization.jobs.spending import Consent
from model_customization.tools.spending import CostQuestion, client_can_elicit, elicitation_parameters, human_consent, question_for
from model_customization.tools.common import internal_error, lazy_module, refuse_invalid_text, run_domain, shorten_message, takes
from model_customization.workspace import Workspace

# imported on first use: the server's start-up stays short
registry = lazy_module("model_customization.registry")
deployments = lazy_module("model_customization.deployments")
chat = lazy_module("model_customization.providers.chat")


class PromptResult(DeferredModel):
    model: str = Field(description="The model that answered, as its provider names it.")
    provider: str = Field(description="The provider that answered (a name from the provider registry).")
    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    stop_reason: str | None = Field(
        default=None, description="Why the answer ended: stop (finished), length (max_tokens reached), refusal, or the provider's own word."
    )
    notice: str | None = Field(default=None, description="A warning about this model from its provider, e.g. the date it shuts down; move to another model before then.")


class ModelScores(DeferredModel):
    # A suite adds the metrics its cases ask for (schema_valid, regex_match, contains, tool_call_exact, answer_chars...).
    model_config = ConfigDict(extra="allow")

    exact_match: float | None = Field(default=None, description="None for a suite whose cases give no reference.")
    normalized_exact_match: float | None = None
    token_f1: float | None = None
    rouge_l: float | None = Field(default=None, description="ROUGE-L F (longest common subsequence of words).")
    chrf: float | None = Field(default=None, description="chrF (character n-gram F score), 0-1.")
    bleu: float | None = Field(default=None, description="Sentence BLEU, 0-1.")
    judge_score: float | None = Field(default=None, description="Mean judge rating over the judged cases, (n-1)/9 of the 1-10 scale; only with a judge.")
    judge_errors: int | None = Field(default=None, description="Cases the judge failed on or gave no usable score for (see resource_uri); only with a judge.")
    perplexity: float | None = Field(default=None, description="Of the reference answers (lower is better); local models only.")
    latency_seconds: float | None = Field(default=None, description="Mean seconds per answer (local: a batch's time shared by its answers).")
    latency_p95_seconds: float | None = None
    prompt_tokens: int | None = Field(default=None, description="Tokens sent, over all cases.")
    completion_tokens: int | None = Field(default=None, description="Tokens answered, over all cases.")
    cost_usd: float | None = Field(default=None, description="What the answers cost at the provider's token prices; 0 for local models, None when the price is unknown (set MODEL_CUSTOMIZATION_CHAT_PRICES).")


class Comparison(DeferredModel):
    baseline: str = Field(description="The first model listed.")
    candidate: str
    metric: str
    mean_difference: float | None = Field(description="Mean over cases of candidate minus baseline; positive favours the candidate.")
    low: float | None = Field(description="Lower bound of the paired bootstrap 95% interval of mean_difference.")
    high: float | None = Field(description="Upper bound of that interval.")
    n: int = Field(description="Cases compared (those with a score from both models).")
    wins_b: int = Field(description="Cases where the candidate scored higher.")
    wins_a: int = Field(description="Cases where the baseline scored higher.")
    ties: int
    sign_test_p: float = Field(description="Two-sided sign test over the cases that are not ties.")
    wilcoxon_p: float | None = Field(default=None, description="Wilcoxon signed-rank test; None when every case is a tie.")
    significant: bool = Field(description="The interval excludes 0 and sign_test_p < 0.05.")
    verdict: str = Field(description="Which model is better at 95%, or that there is no significant difference.")


class PairwiseComparison(DeferredModel):
    baseline: str = Field(description="The first model listed.")
    candidate: str
    wins: int = Field(description="Cases where the judge preferred the candidate in both orders.")
    losses: int = Field(description="Cases where the judge preferred the baseline in both orders.")
    ties: int = Field(description="Cases where the two orders disagreed, or the judge said tie or gave no usable answer.")
    judge_errors: int = Field(description="Judge calls that failed or could not be understood (their cases count as ties).")
    sign_test_p: float = Field(description="Two-sided sign test over wins and losses.")
    significant: bool
    verdict: str


class EvaluationResult(DeferredModel):
    eval_id: str
    dataset_id: str | None = Field(default=None, description="The dataset evaluated on; None for a suite.")
    suite: str | None = Field(default=None, description="The suite file evaluated on, when one was given.")
    split: str | None = None
    cases: int
    models: list[str]
    scores: dict[str, ModelScores] = Field(description="Mean of each metric per model (0-1, higher is better).")
    judge: str | None = Field(default=None, description="The model that rated the answers, when one was asked for.")
    primary_metric: str | None = Field(default="token_f1", description="The metric the comparisons are made on.")
    pairwise: list[PairwiseComparison] = Field(
        default_factory=list, description="With a pairwise_judge: each other model against the first, judged in both orders."
    )
    comparisons: list[Comparison] = Field(
        default_factory=list, description="Each other model against the first, paired case by case; act on the verdict. Confidence intervals per metric are in resource_uri."
    )
    resumed: bool = Field(default=False, description="True when this run continued an interrupted evaluation (resume).")
    resource_uri: str = Field(description="Read it for per-case outputs and confidence intervals; {resource_uri}/report.md and /chart.png for people.")


class ModelSummary(DeferredModel):
    model_id: str = Field(description="Pass it to prompt_model, evaluate, export_model or deploy_model.")
    provider: str
    kind: str = Field(description="base (usable as it is, e.g. the embedded model) or tuned (made by a job).")
    base_model: str
    job_id: str | None = Field(description="The job that trained it.")
    job_status: str | None
    dataset_id: str | None = Field(description="The dataset it was trained on.")
    evaluations: int | None = Field(description="Evaluations it took part in.")
    live_deployments: list[str] = Field(description="Agents (agent or agent/task) it serves now.")
    created_at: str | None
    uri: str | None = Field(description="models://{model_id}: its whole lineage.")
    notice: str | None = Field(default=None, description="A warning from the model's provider, e.g. the date it shuts the model down.")


class ModelList(DeferredModel):
    models: list[ModelSummary]
    next_cursor: str | None = Field(None, description="Pass as cursor for the next page; null on the last page.")


def register(server: MCPServer, ws: Workspace) -> None:
    @server.tool(annotations=ToolAnnotations(title="List models", read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False))
    @takes(ListModelsRequest)
    async def list_models(request: ListModelsRequest) -> ModelList:
        """List the models you can use: the embedded base model first, then every tuned model newest first with the job
        and dataset it came from, how often it was evaluated and the agents it serves.

        Free and read-only (reads this server's registry). Next: prompt_model or evaluate with a model_id; read its
        uri (models://{model_id}) for the full lineage. Cloud base models (gpt-..., claude-...) are not listed: name them directly.
        """
        page = await run_domain(registry.list_models_page, ws, request.limit, request.cursor)
        return ModelList(models=[ModelSummary(**{k: v for k, v in m.items() if k in ModelSummary.model_fields}) for m in page["models"]], next_cursor=page["next_cursor"])

    def prompt_cost_question(
        ctx: Context,
        prompt: str | None = None,
        messages: list | None = None,
        system: str | None = None,
        model: str | None = None,
        agent: str | None = None,
        task: str | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> CostQuestion | None:
        """Before prompt_model runs: the question a person must answer about a paid call over budget (None when the
        client cannot be asked, or nothing needs asking)."""
        if not client_can_elicit(ctx):
            return None

        def check() -> None:
            request = PromptModelRequest(prompt=prompt, messages=messages, system=system, model=model, agent=agent, task=task, max_tokens=max_tokens, temperature=temperature, seed=seed)
            chosen = deployments.deployed_model(ws, agent, task) if agent is not None else model
            chat.check_chat_spending(ws, chosen or EMBEDDED_MODEL, request.conversation(), request.max_tokens)

        return question_for(check)

    PromptQuestion, PromptAnswer = elicitation_parameters(prompt_cost_question)

    @server.tool(annotations=ToolAnnotations(title="Prompt a model", read_only_hint=True, destructive_hint=False, idempotent_hint=False, open_world_hint=True))
    @takes(PromptModelRequest)
    async def prompt_model(request: PromptModelRequest, cost_question: PromptQuestion = None, cost_answer: PromptAnswer = None) -> PromptResult:
        """Get one answer from any model, local or cloud, to try it out or use it.

        Local models run on this machine; the first call to one loads it (a few seconds). Cloud models (OpenAI,
        Anthropic, Bedrock) are called with the provider's key from the server's environment (OPENAI_API_KEY,
        ANTHROPIC_API_KEY, AWS credentials) and each call costs the provider's token price: it is quoted first (the
        prompt and max_tokens at the price table's rates) and runs within the operator's budgets, or once the user
        confirms it (asked through elicitation when the client supports it). The result says which
        provider answered. Use evaluate for a measured comparison rather than single prompts. With agent (and
        optionally task) instead of model, the model deployed to that agent answers. Next: evaluate to measure a tuned
        model against its base, deploy_model to put a winner behind an agent, export_model to run it elsewhere.
        """
        if (request.prompt is None) == (request.messages is None):
            raise ToolError("Give exactly one of prompt (a single user message) or messages (a conversation).")
        if request.agent is not None and request.model is not None:
            raise ToolError("Give model or agent, not both: agent uses the model deployed to it (read agents://{agent}).")
        if request.task is not None and request.agent is None:
            raise ToolError("task picks one of an agent's deployed models: give agent too, or name the model instead.")
        model = request.model
        if request.agent is not None:
            model = await run_domain(deployments.deployed_model, ws, request.agent, request.task)
        accepted = human_consent(cost_question, cost_answer, refused="Not sent")
        result = await run_domain(
            chat.chat, ws, model or EMBEDDED_MODEL, request.conversation(), max_tokens=request.max_tokens, temperature=request.temperature,
            seed=request.seed, consent=Consent(human_usd=accepted),
        )
        return PromptResult(**result)

    def evaluation_cost_question(
        ctx: Context,
        models: list[str] | None = None,
        dataset_id: str | None = None,
        split: str = "test",
        max_tokens: int = 64,
        limit: int | None = None,
        judge: str | None = None,
        primary_metric: str | None = None,
        suite: str | None = None,
        pairwise_judge: str | None = None,
        resume: str | None = None,
    ) -> CostQuestion | None:
        """Before evaluate runs: the question a person must answer about its paid calls (answers, judge ratings,
        pairwise verdicts) when they pass the budgets; None when the client cannot be asked or nothing needs asking."""
        if not client_can_elicit(ctx):
            return None
        from model_customization.evaluation.runner import check_evaluation_spending

        asked = {
            "dataset_id": dataset_id, "models": list(models) if models else None, "split": split, "max_tokens": max_tokens, "limit": limit,
            "batch_size": 8, "judge": judge, "primary_metric": primary_metric, "suite": suite, "pairwise_judge": pairwise_judge,
        }
        return question_for(lambda: check_evaluation_spending(ws, asked, resume))

    EvaluationQuestion, EvaluationAnswer = elicitation_parameters(evaluation_cost_question)

    @server.tool(annotations=ToolAnnotations(title="Evaluate models", read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True))
    async def evaluate(
        models: Annotated[
            list[str] | None,
            Field(
                min_length=2,
                description=f"Two or more, local or cloud (the forms prompt_model takes): e.g. ['{EMBEDDED_MODEL}', 'ft-...'] or ['ft-...', 'gpt-4o-mini']; a local job's checkpoint as '<job_id>@step-N'. Leave out with resume.",
            ),
        ] = None,
        dataset_id: Annotated[str | None, Field(description="Evaluate on this dataset's split. Give this or suite.")] = None,
        split: Annotated[Literal["train", "validation", "test"], Field(description="Held-out test split by default.")] = "test",
        max_tokens: Annotated[int, Field(ge=1, le=2048, description="Longest answer per case, in tokens (keep it near the reference answers' length).")] = 64,
        limit: Annotated[int | None, Field(ge=1, description="Evaluate only the first N cases.")] = None,
        judge: Annotated[
            str | None,
            Field(
                description=(
                    "A model (any form prompt_model takes, e.g. claude-sonnet-5 or gpt-4o) that rates every answer against the "
                    "reference from 1 to 10, reported as judge_score. A cloud judge makes one paid API call per case per model."
                )
            ),
        ] = None,
        primary_metric: Annotated[
            str | None,
            Field(
                description=(
                    "The metric models are compared on: exact_match, normalized_exact_match, token_f1, judge_score with a judge, "
                    "or one a suite provides (schema_valid, regex_match, contains, tool_call_exact...). Default token_f1 when available."
                )
            ),
        ] = None,
        suite: Annotated[
            str | None,
            Field(
                description=(
                    "Instead of dataset_id: a .jsonl or .yaml file of cases, each with messages and any of reference, json_schema, "
                    "regex, contains, expected_tool_call (name, arguments) and rubric. Each answer gets the metrics its case asks for."
                )
            ),
        ] = None,
        pairwise_judge: Annotated[
            str | None,
            Field(
                description=(
                    "A model that picks the better of two answers, asked twice per case with the answers swapped; a win counts "
                    "only when both orders agree. Compares each other model with the first; two paid calls per case per pair."
                )
            ),
        ] = None,
        concurrency: Annotated[
            int,
            Field(ge=1, le=MAX_CONCURRENCY, description="Cloud calls in flight at once (local models answer one batch at a time). Each provider's MODEL_CUSTOMIZATION_RPM_<PROVIDER> limit still applies."),
        ] = DEFAULT_CONCURRENCY,
        resume: Annotated[
            str | None,
            Field(description="The eval_id of an evaluation that stopped (an error, a cancel, a crash): continue it with its original settings, redoing only the pieces not yet stored."),
        ] = None,
        include_chart: Annotated[bool, Field(description="Also return the chart of the scores with their 95% intervals as a PNG image (also at evals://{eval_id}/chart.png).")] = False,
        ctx: Context | None = None,
        cost_question: EvaluationQuestion = None,
        cost_answer: EvaluationAnswer = None,
    ) -> Annotated[CallToolResult, EvaluationResult]:
        """Compare models on a dataset's held-out examples: exact match, normalised exact match and token F1, and a judge's rating if asked.

        Each case prompts every model with the conversation up to its last assistant turn (greedy for local models,
        the most repeatable setting a cloud provider offers) and scores the answer against that turn. Local models take about a second per case on CPU;
        cloud models are called once per case and cost their token price. A judge's unusable replies are counted in
        judge_errors, not hidden. Each other model is compared with the first on primary_metric, case by case (paired
        bootstrap 95% interval of the difference and a sign test), with a verdict: "X better than Y at 95%" or "no
        significant difference". Progress is reported. The result is stored: read resource_uri for per-case outputs.
        A suite file replaces the dataset with your own cases; a pairwise_judge adds head-to-head wins, losses and ties
        with a sign test, judged in both answer orders so that a judge's preference for a position cannot make a winner.
        Cloud calls are quoted together first (cases x models at max_tokens, plus the judges' calls) and run within the
        operator's budgets or once the user confirms the quote (asked through elicitation when the client supports it).
        Next: deploy_model with the winner (this eval_id lets it through the gate), or export_model to run it elsewhere.
        """
        async def report_progress(done: int, total: int, note: str) -> None:
            if ctx is not None:
                try:
                    await ctx.report_progress(done, total, note)
                except Exception:  # noqa: BLE001 - a client that went away must not stop the evaluation
                    pass

        refuse_invalid_text(models, dataset_id, judge, primary_metric, suite, pairwise_judge, resume)
        accepted = human_consent(cost_question, cost_answer, refused="Not evaluated")
        from model_customization.evaluation.runner import evaluate_async

        try:
            result = await evaluate_async(
                ws,
                dataset_id,
                models,
                split=split,
                max_tokens=max_tokens,
                limit=limit,
                judge=judge,
                progress=report_progress,
                primary_metric=primary_metric,
                suite=suite,
                pairwise_judge=pairwise_judge,
                concurrency=concurrency,
                resume=resume,
                consent=Consent(human_usd=accepted),
            )
        except UserError as error:
            raise ToolError(shorten_message(str(error))) from error
        except Exception as error:  # a bug: an id for the agent, the traceback in the server log
            raise internal_error("evaluate", error) from error
        evaluation = EvaluationResult(
            eval_id=result["id"],
            dataset_id=result["dataset_id"],
            suite=result.get("suite"),
            split=result["split"],
            cases=result["cases"],
            models=result["models"],
            scores={m: ModelScores(**s) for m, s in result["summary"].items()},
            judge=(result.get("judge") or {}).get("model"),
            primary_metric=result["primary_metric"],
            comparisons=[Comparison(**c) for c in result["comparisons"]],
            pairwise=[PairwiseComparison(**c) for c in (result.get("pairwise") or {}).get("comparisons", [])],
            resumed=bool(result.get("resumed")),
            resource_uri=result["resource_uri"],
        )
        # Built by hand so the chart can travel beside the structured output; the text block is the same JSON.
        content: list[TextContent | ImageContent] = [TextContent(type="text", text=evaluation.model_dump_json(indent=2))]
        if include_chart:
            from pathlib import Path

            from model_customization.evaluation.report import stored_report_chart

            folder = Path(ws.store.evaluations.get(evaluation.eval_id)["path"])
            try:
                png = await run_domain(stored_report_chart, folder)
                content.append(Image(data=png, format="png").to_image_content())
            except ToolError as error:
                content.append(TextContent(type="text", text=f"No chart: {error}"))
        return CallToolResult(content=content, structured_content=evaluation.model_dump(mode="json"))
