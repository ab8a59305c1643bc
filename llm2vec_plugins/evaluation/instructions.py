"""Task instructions used by the LLM2Vec paper's MTEB evaluation (its Table 10, taken from E5-Mistral).

The paper puts the instruction on the query side only for retrieval and reranking (documents are encoded
without one), and on both sides for symmetric tasks (STS, pair classification, clustering, classification).
Instructions end with ":" because LLM2Vec joins instruction and text with a space and that is how the
reference `test_configs/mteb/task_to_instructions.json` writes them.
"""
from __future__ import annotations

STS_INSTRUCTION = "Retrieve semantically similar text:"

_CQADUPSTACK = "Given a question, retrieve detailed question descriptions from Stackexchange that are duplicates to the given question:"

# Keyed by MTEB task name. Only the query / symmetric side: documents of retrieval tasks get no instruction.
MTEB_INSTRUCTIONS: dict[str, str] = {
    # Classification
    "AmazonCounterfactualClassification": "Classify a given Amazon customer review text as either counterfactual or not-counterfactual:",
    "AmazonPolarityClassification": "Classify Amazon reviews into positive or negative sentiment:",
    "AmazonReviewsClassification": "Classify the given Amazon review into its appropriate rating category:",
    "Banking77Classification": "Given a online banking query, find the corresponding intents:",
    "EmotionClassification": "Classify the emotion expressed in the given Twitter message into one of the six emotions: anger, fear, joy, love, sadness, and surprise:",
    "ImdbClassification": "Classify the sentiment expressed in the given movie review text from the IMDB dataset:",
    "MassiveIntentClassification": "Given a user utterance as query, find the user intents:",
    "MassiveScenarioClassification": "Given a user utterance as query, find the user scenarios:",
    "MTOPDomainClassification": "Classify the intent domain of the given utterance in task-oriented conversation:",
    "MTOPIntentClassification": "Classify the intent of the given utterance in task-oriented conversation:",
    "ToxicConversationsClassification": "Classify the given comments as either toxic or not toxic:",
    "TweetSentimentExtractionClassification": "Classify the sentiment of a given tweet as either positive, negative, or neutral:",
    # Clustering
    "ArxivClusteringP2P": "Identify the main and secondary category of Arxiv papers based on the titles and abstracts:",
    "ArxivClusteringS2S": "Identify the main and secondary category of Arxiv papers based on the titles:",
    "BiorxivClusteringP2P": "Identify the main category of Biorxiv papers based on the titles and abstracts:",
    "BiorxivClusteringS2S": "Identify the main category of Biorxiv papers based on the titles:",
    "MedrxivClusteringP2P": "Identify the main category of Medrxiv papers based on the titles and abstracts:",
    "MedrxivClusteringS2S": "Identify the main category of Medrxiv papers based on the titles:",
    "RedditClustering": "Identify the topic or theme of Reddit posts based on the titles:",
    "RedditClusteringP2P": "Identify the topic or theme of Reddit posts based on the titles and posts:",
    "StackExchangeClustering": "Identify the topic or theme of StackExchange posts based on the titles:",
    "StackExchangeClusteringP2P": "Identify the topic or theme of StackExchange posts based on the given paragraphs:",
    "TwentyNewsgroupsClustering": "Identify the topic or theme of the given news articles:",
    # Pair classification
    "SprintDuplicateQuestions": "Retrieve duplicate questions from Sprint forum:",
    "TwitterSemEval2015": "Retrieve tweets that are semantically similar to the given tweet:",
    "TwitterURLCorpus": "Retrieve tweets that are semantically similar to the given tweet:",
    # Reranking
    "AskUbuntuDupQuestions": "Retrieve duplicate questions from AskUbuntu forum:",
    "MindSmallReranking": "Retrieve relevant news articles based on user browsing history:",
    "SciDocsRR": "Given a title of a scientific paper, retrieve the titles of other relevant papers:",
    "StackOverflowDupQuestions": "Retrieve duplicate questions from StackOverflow forum:",
    # Retrieval
    "ArguAna": "Given a claim, find documents that refute the claim:",
    "ClimateFEVER": "Given a claim about climate change, retrieve documents that support or refute the claim:",
    "DBPedia": "Given a query, retrieve relevant entity descriptions from DBPedia:",
    "FEVER": "Given a claim, retrieve documents that support or refute the claim:",
    "FiQA2018": "Given a financial question, retrieve user replies that best answer the question:",
    "HotpotQA": "Given a multi-hop question, retrieve documents that can help answer the question:",
    "MSMARCO": "Given a web search query, retrieve relevant passages that answer the query:",
    "NFCorpus": "Given a question, retrieve relevant documents that best answer the question:",
    "NQ": "Given a question, retrieve Wikipedia passages that answer the question:",
    "QuoraRetrieval": "Given a question, retrieve questions that are semantically equivalent to the given question:",
    "SCIDOCS": "Given a scientific paper title, retrieve paper abstracts that are cited by the given paper:",
    "SciFact": "Given a scientific claim, retrieve documents that support or refute the claim:",
    "Touche2020": "Given a question, retrieve detailed and persuasive arguments that answer the question:",
    "TRECCOVID": "Given a query on COVID-19, retrieve documents that answer the query:",
    **{
        f"CQADupstack{forum}Retrieval": _CQADUPSTACK
        for forum in ("Android", "English", "Gaming", "Gis", "Mathematica", "Physics",
                      "Programmers", "Stats", "Tex", "Unix", "Webmasters", "Wordpress")
    },
    # STS and summarization: the same symmetric instruction on both texts.
    **{name: STS_INSTRUCTION for name in ("BIOSSES", "SICK-R", "STS12", "STS13", "STS14", "STS15", "STS16",
                                          "STS17", "STS22", "STSBenchmark")},
    "SummEval": "Given a news summary, retrieve other semantically similar summaries:",
}


def as_llm2vec_instruction(instruction: str) -> str:
    """Normalize an instruction to LLM2Vec's form, ending with ":" (E5/MTEB prompts end with "." or nothing).

    Example:
        >>> as_llm2vec_instruction("Retrieve semantically similar text.")
        'Retrieve semantically similar text:'
    """
    instruction = instruction.strip()
    if instruction and not instruction.endswith(":"):
        instruction = instruction.rstrip(".").rstrip() + ":"
    return instruction
