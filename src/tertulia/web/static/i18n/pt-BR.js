/**
 * Textos em português do Brasil. Os marcadores `{name}` são preenchidos; `.one`/`.other`
 * são as formas de plural.
 */
export default {
  "action.attach": "Anexar um arquivo",
  "action.back_to_lobby": "Voltar ao início",
  "action.cancel_recording": "Descartar a gravação",
  "action.cancel_reply": "Cancelar a resposta",
  "action.cancel_upload": "Cancelar o envio",
  "action.close": "Fechar",
  "action.discard": "Apagar",
  "action.dismiss": "Dispensar",
  "action.record": "Gravar uma mensagem de voz",
  "action.remove_file": "Remover {name}",
  "action.reply": "Responder",
  "action.reply_to": "Responder a {name}",
  "action.retry": "Tentar de novo",
  "action.save_transcript": "Salvar a conversa como arquivo de texto",
  "action.send": "Enviar",
  "action.send_recording": "Enviar a mensagem de voz",
  "action.send_unquoted": "Enviar sem a citação",

  "announce.many.one": "{count} mensagem nova",
  "announce.many.other": "{count} mensagens novas",
  "announce.message": "{name}: {text}",
  "announce.with_options.one": "{text}, {count} opção",
  "announce.with_options.other": "{text}, {count} opções",

  "bot.badge": "bot",

  "composer.drop": "Solte os arquivos para enviá-los",
  "composer.form": "Escrever uma mensagem",
  "composer.hint": "Enter envia; Shift+Enter começa uma nova linha.",
  "composer.label": "Mensagem",
  "composer.placeholder": "Escreva uma mensagem…",
  "composer.replying_to": "Respondendo a {name}",
  "composer.staged": "Arquivos a enviar",
  "composer.too_long":
    "Esta mensagem é longa demais para enviar: {count} caracteres, e o limite é {max}. Encurte-a ou divida-a.",

  "connection.back": "Conectado de novo.",
  "connection.connecting": "Conectando…",
  "connection.retry": "Tentar agora",
  "connection.too_many":
    "Esta conversa está aberta em abas ou janelas demais. Feche uma para continuar aqui.",
  "connection.unreachable": "Não foi possível falar com o servidor. Tentando de novo…",
  "connection.waiting": "Conexão perdida. Reconectando em {time}…",
  "connection.waiting_words.one": "Conexão perdida. Reconectando em {count} segundo.",
  "connection.waiting_words.other": "Conexão perdida. Reconectando em {count} segundos.",

  "conversation.untitled": "Conversa",

  "day.today": "Hoje",
  "day.yesterday": "Ontem",

  "ended.banner": "Esta conversa foi encerrada.",
  "ended.banner_by": "Esta conversa foi encerrada: {name} saiu.",

  "file.empty": "{name} está vazio.",
  "file.limits_unknown": "Não foi possível carregar os limites de arquivo. Tente de novo.",
  "file.not_accepted":
    "{name} não pode ser enviado: esta conversa não aceita este tipo de arquivo ({kind}).",
  "file.too_large": "{name} é grande demais ({size}); o limite é {max}.",
  "file.unavailable": "Arquivo indisponível",

  "history.failed": "Não foi possível carregar as mensagens anteriores.",
  "history.older": "Carregar mensagens anteriores",

  "kind.attachment": "Arquivo",
  "kind.audio": "Áudio",
  "kind.image": "Foto",
  "kind.video": "Vídeo",
  "kind.voice": "Mensagem de voz",

  "language.label": "Idioma",

  "lobby.bots": "Bots a convidar",
  "lobby.failed": "Não deu certo. Tente de novo.",
  "lobby.join": "Entrar",
  "lobby.join_named": "Entrar em {name}",
  "lobby.loading": "Carregando…",
  "lobby.name": "Nome da conversa",
  "lobby.new": "Nova conversa",
  "lobby.nickname": "Seu nome",
  "lobby.nickname_missing": "Digite o seu nome.",
  "lobby.nickname_too_long": "O seu nome é longo demais: {count} caracteres, e o limite é {max}.",
  "lobby.name_too_long":
    "O nome da conversa é longo demais: {count} caracteres, e o limite é {max}.",
  "lobby.no_bots": "Nenhum bot está instalado.",
  "lobby.no_rooms": "Ainda não há conversas abertas.",
  "lobby.optional": "(opcional)",
  "lobby.refresh": "Atualizar a lista",
  "lobby.rejoin": "Abrir",
  "lobby.rejoin_named": "Abrir {name} de novo",
  "lobby.room_people.one": "{count} participante",
  "lobby.room_people.other": "{count} participantes",
  "lobby.rooms": "Conversas abertas",
  "lobby.start": "Começar a conversa",
  "lobby.tagline": "Converse com pessoas e bots.",
  "lobby.unreachable": "Não foi possível falar com o servidor.",
  "lobby.unavailable": "O servidor está indisponível agora. Tente de novo daqui a pouco.",
  "lobby.yours": "Suas conversas",

  "lost.gone": "Essa conversa não existe mais.",
  "lost.left": "Você não está mais nessa conversa.",

  "messages.help":
    "As setas, Home e End passam de uma mensagem a outra; Tab chega aos botões da mensagem em foco (as opções dela, Responder); R responde a ela.",
  "messages.label": "Mensagens",
  "messages.new.one": "{count} mensagem nova",
  "messages.new.other": "{count} mensagens novas",

  "options.label": "Opções",
  "options.stale": "Só as opções mais recentes podem ser escolhidas",

  "participants.is_bot": "um bot",
  "participants.offline": "offline",
  "participants.left_name": "{name} (saiu)",
  "participants.online": "online",
  "participants.online_count.one": "{count} online",
  "participants.online_count.other": "{count} online",
  "participants.title": "Participantes",
  "participants.toggle": "Mostrar ou esconder os participantes",
  "participants.toggle_count.one": "{count} participante: mostrar ou esconder",
  "participants.toggle_count.other": "{count} participantes: mostrar ou esconder",
  "participants.working": "trabalhando",

  "quote.go": "Ir para a mensagem citada",
  "quote.label": "Citando",
  "quote.missing": "Mostrar a mensagem citada",
  "quote.unavailable": "A mensagem citada não está disponível.",

  "skip.composer": "Ir para a caixa de mensagem",
  someone: "Alguém",

  "status.failed": "Não enviada",
  "refused.throttled": "Você está enviando mensagens rápido demais. Espere um pouco e tente de novo.",
  "refused.not_participant": "Você não está mais nesta conversa.",
  "refused.quote_missing": "A mensagem que você respondeu não está disponível.",
  "refused.unavailable": "O servidor está indisponível agora. Tente de novo daqui a pouco.",
  "status.next_upload": "Aguardando o arquivo anterior…",
  "status.retrying": "Ainda não aceito; tentando de novo…",
  "status.sending": "Enviando…",
  "status.server_waiting": "Aguardando o servidor…",
  "status.sent": "Entregue",
  "status.upload_progress": "Progresso do envio",
  "status.uploading": "Enviando… {percent}%",
  "status.waiting": "Aguardando a conexão…",

  "system.created": "Conversa criada",
  "system.ended": "A conversa foi encerrada",
  "system.ended_by": "A conversa foi encerrada ({name} saiu)",
  "system.joined": "{name} entrou",
  "system.left": "{name} saiu",
  "system.name": "Sistema",
  "system.other": "Evento: {event}",
  "system.you_joined": "Você entrou",
  "system.you_left": "Você saiu",

  "transcript.failed": "Não foi possível salvar a conversa. Tente de novo.",
  "transcript.saved": "Salva em {time}",

  "upload.failed_status": "O envio falhou (HTTP {status}).",
  "upload.forbidden": "Você não pode enviar arquivos aqui.",
  "upload.too_large_server": "O servidor recusou o arquivo: ele é maior que {max}.",
  "upload.too_large_server_unsized": "O servidor recusou o arquivo: ele é grande demais.",
  "upload.unreachable": "O envio não chegou ao servidor.",

  "voice.denied": "O microfone não está disponível.",
  "voice.recording": "Gravando",

  "working.many": "{names} estão trabalhando…",
  "working.one": "{name} está trabalhando…",

  you: "Você",
};
