"""The bot's fixed texts (not found, evidence headings, no such document or page), in
English and Chinese: a Chinese question gets the Chinese ones; quotes stay in their
document's language."""

from __future__ import annotations

NOT_FOUND = (
    "I could not find this in the documents of this channel's workspace, "
    "so I won't guess. Share the document that holds the answer and ask again."
)

# The fixed texts, in English and Chinese (a Chinese question gets the Chinese ones).
TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "not_found": NOT_FOUND,
        "searched": "I searched for: {terms}.",
        "missing": "No document mentions: {terms}.",
        "not_spelled_out": "The documents write {short} but none spells it out.",
        "stands_for": "{short} stands for “{long}”.",
        "closest": "The closest passage is in {where}.",
        "evidence": "Evidence:",
        "replaced": "The documents say:",
        "unclear": "No passage clearly answers this. The closest the documents come:",
        "working": "(writing an answer from these passages...)",
        "no_document": "There is no document named '{name}' in this workspace.",
        "closest_names": "The closest names: {names}.",
        "no_documents": "This workspace has no documents yet.",
        "empty": (
            "No document has been shared in this channel's workspace yet: share a file "
            "here and I will index it."
        ),
        "indexing": (
            "The documents shared here are still being indexed ({count} waiting): ask again "
            "in a moment."
        ),
        "greeting": (
            "Hello! Ask me about the documents shared in this channel: I answer from them, "
            "quote the sentences I rely on and say where they are. "
            "/librarian help lists the commands."
        ),
        "thanks": "You're welcome. A 👍 or 👎 on an answer tells me how it was.",
        "blank": (
            "Ask me a question in words about the documents shared in this channel: I answer "
            "from them and quote where. /librarian help lists the commands."
        ),
        "documents": "This workspace has {count} documents: {names}.",
        "document_one": "This workspace has one document: {names}.",
        "documents_more": "{names} and {more} more",
        "documents_how": "Ask me about any of them; /librarian docs lists them with their details.",
        "document_one_how": "Ask me about it; /librarian docs shows its details.",
        "capabilities": (
            "I answer questions from the documents shared in this channel's workspace "
            "(PDFs, Office files, web pages, spreadsheets, images), quoting the sentences I "
            "rely on with their file and page, and I say so when the documents do not "
            "answer. Share a file here to add it; /librarian help lists the commands."
        ),
        "no_page": "{name} has no {unit} {page}.",
        "then": " ",  # between two sentences
        "page_count": "It has {label}.",
        "sources": "Sources:",
        "shared_in": "shared in {where}",
    },
    "zh": {
        "not_found": (
            "我在这个频道工作区的文件中没有找到答案，所以不做猜测。请分享包含答案的文件后再问。"
        ),
        "searched": "我搜索了：{terms}。",
        "missing": "没有任何文件提到：{terms}。",
        "not_spelled_out": "文件中出现了 {short}，但没有写出它的全称。",
        "stands_for": "{short} 是 “{long}” 的缩写。",
        "closest": "最接近的段落在 {where}。",
        "evidence": "依据：",
        "replaced": "文件中写道：",
        "unclear": "没有段落明确回答这个问题。文件中最接近的内容：",
        "working": "（正在根据这些段落撰写回答……）",
        "no_document": "这个工作区里没有名为“{name}”的文件。",
        "closest_names": "最接近的文件名：{names}。",
        "no_documents": "这个工作区还没有文件。",
        "empty": "这个频道的工作区还没有分享任何文件：请在这里分享文件，我会建立索引。",
        "indexing": "这里分享的文件仍在建立索引（还有 {count} 个）：请稍后再问。",
        "greeting": (
            "你好！请问我关于这个频道所分享文件的问题：我根据文件回答，引用所依据的句子并注明出处。"
            "输入 /librarian help 查看命令。"
        ),
        "thanks": "不客气。对回答点 👍 或 👎 可以告诉我回答得怎么样。",
        "blank": (
            "请用文字问我关于这个频道所分享文件的问题：我根据文件回答并注明出处。"
            "输入 /librarian help 查看命令。"
        ),
        "documents": "这个工作区共有 {count} 个文件：{names}。",
        "document_one": "这个工作区有 1 个文件：{names}。",
        "documents_more": "{names} 等另外 {more} 个",
        "documents_how": "可以问我其中任何一个文件；/librarian docs 列出它们的详细信息。",
        "document_one_how": "可以问我关于它的问题；/librarian docs 显示它的详细信息。",
        "capabilities": (
            "我根据这个频道工作区中分享的文件（PDF、Office 文件、网页、表格、图片）回答问题，"
            "引用所依据的句子并注明文件和页码；文件中没有答案时我会直说。"
            "在这里分享文件即可加入；输入 /librarian help 查看命令。"
        ),
        "no_page": "{name} 没有第 {page} {unit}。",
        "then": "",
        "page_count": "它共有 {count} {unit}。",
        "sources": "来源：",
        "shared_in": "分享于 {where}",
    },
}
# What a page, slide or sheet asked for by number is called in each language.
UNIT_NAMES: dict[str, dict[str, str]] = {
    "en": {"page": "page", "slide": "slide", "sheet": "sheet"},
    "zh": {"page": "页", "slide": "张幻灯片", "sheet": "个工作表"},
}
