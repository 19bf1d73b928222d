# egg's R driver: one live R session for every R cell of an egg. It reads
# cells from fd 3 as "<cell> <length>\n" followed by the code, evaluates
# each in the global environment, prints visible values as the console
# would, and writes "<cell> <status>\n" on fd 4.
#
# With $EGG_DISPLAY_FD set (egg hatch), it also writes display records
# there, one nbformat output per line, as IRkernel shows a cell: printed
# text as stdout streams (and on stdout), a visible value as display_data
# text/plain (not on stdout), an error as an error output (ename "ERROR"), and the plots
# the cell drew as image/png. docs/NOTEBOOKS.md describes the records.
local({
  code_in <- file("/dev/fd/3", open = "rb")
  status_out <- file("/dev/fd/4", open = "wb")
  display_out <- NULL
  display_fd <- Sys.getenv("EGG_DISPLAY_FD")
  if (grepl("^[0-9]+$", display_fd)) {
    display_out <- tryCatch(
      file(paste0("/dev/fd/", display_fd), open = "wb", raw = TRUE),
      error = function(e) NULL)
  }

  json_string <- function(s) {
    s <- iconv(paste(s, collapse = "\n"), "UTF-8", "UTF-8", sub = "?")
    if (is.na(s)) s <- ""
    s <- gsub("\\", "\\\\", s, fixed = TRUE)
    s <- gsub("\"", "\\\"", s, fixed = TRUE)
    s <- gsub("\n", "\\n", s, fixed = TRUE)
    s <- gsub("\r", "\\r", s, fixed = TRUE)
    s <- gsub("\t", "\\t", s, fixed = TRUE)
    for (code in c(1:8, 11:12, 14:31, 127)) {
      s <- gsub(intToUtf8(code), sprintf("\\u%04x", code), s, fixed = TRUE)
    }
    paste0("\"", s, "\"")
  }

  base64 <- function(bytes) {
    alphabet <- strsplit(paste0("ABCDEFGHIJKLMNOPQRSTUVWXYZ",
                                "abcdefghijklmnopqrstuvwxyz0123456789+/"),
                         "")[[1]]
    n <- length(bytes)
    if (n == 0L) return("")
    pad <- (3L - n %% 3L) %% 3L
    v <- matrix(as.integer(c(bytes, as.raw(rep(0L, pad)))), nrow = 3L)
    x <- v[1, ] * 65536 + v[2, ] * 256 + v[3, ]
    idx <- rbind(x %/% 262144, (x %/% 4096) %% 64, (x %/% 64) %% 64, x %% 64)
    out <- alphabet[as.vector(idx) + 1L]
    if (pad > 0L) out[(length(out) - pad + 1L):length(out)] <- "="
    paste(out, collapse = "")
  }

  emit <- function(record) {
    if (is.null(display_out)) return(invisible())
    writeBin(charToRaw(paste0(record, "\n")), display_out)
    flush(display_out)
  }

  emit_stream <- function(text) {
    if (!length(text)) return(invisible())
    text <- paste0(paste(text, collapse = "\n"), "\n")
    cat(text)
    # The text is on stdout already: the record stands for its bytes
    # there, so each byte counts once against the output cap.
    emit(paste0("{\"output_type\": \"stream\", \"name\": \"stdout\", ",
                "\"egg_raw_bytes\": ",
                format(nchar(text, type = "bytes"), scientific = FALSE),
                "}"))
  }

  emit_value <- function(value) {
    # As in Python's display driver, the value is a record, not stdout.
    text <- paste(utils::capture.output(print(value)), collapse = "\n")
    emit(paste0("{\"output_type\": \"display_data\", \"data\": ",
                "{\"text/plain\": ", json_string(text), "}, ",
                "\"metadata\": {}}"))
  }

  emit_error <- function(err) {
    call <- conditionCall(err)
    text <- if (is.null(call)) {
      paste0("Error: ", conditionMessage(err))
    } else {
      paste0("Error in ", deparse(call)[1], ": ", conditionMessage(err))
    }
    emit(paste0("{\"output_type\": \"error\", \"ename\": \"ERROR\", ",
                "\"evalue\": ", json_string(text), ", ",
                "\"traceback\": [", json_string(text), "]}"))
  }

  emit_plots <- function(pattern) {
    for (f in sort(Sys.glob(sub("%03d", "*", pattern, fixed = TRUE)))) {
      size <- file.info(f)$size
      if (!is.na(size) && size > 0) {
        png <- readBin(f, "raw", size)
        emit(paste0("{\"output_type\": \"display_data\", \"data\": ",
                    "{\"image/png\": \"", base64(png), "\", ",
                    "\"text/plain\": \"plot without title\"}, ",
                    "\"metadata\": {}}"))
      }
      unlink(f)
    }
  }

  # One top-level expression with its printed output captured, so that
  # text and values keep their order in the records.
  eval_recorded <- function(e) {
    captured <- character()
    tc <- textConnection("captured", "w", local = TRUE)
    sink(tc)
    closed <- FALSE
    on.exit(if (!closed) {
      sink()
      close(tc)
      emit_stream(captured)
    })
    res <- withVisible(eval(e, envir = globalenv()))
    sink()
    close(tc)
    closed <- TRUE
    emit_stream(captured)
    if (res$visible) emit_value(res$value)
  }

  read_header <- function() {
    bytes <- raw(0)
    repeat {
      b <- readBin(code_in, "raw", 1L)
      if (length(b) == 0L) return(NULL)
      if (b == as.raw(10L)) break
      bytes <- c(bytes, b)
      if (length(bytes) > 64L) stop("cell header too long")
    }
    as.numeric(strsplit(rawToChar(bytes), " ", fixed = TRUE)[[1]])
  }

  run_cell <- function(code, cell) {
    status <- 0L
    plots <- NULL
    device <- NULL
    if (!is.null(display_out)) {
      plots <- file.path(tempdir(), sprintf("egg-plot-%d-%%03d.png", cell))
      device <- tryCatch({
        grDevices::png(plots, width = 7, height = 7, units = "in", res = 120)
        grDevices::dev.cur()
      }, error = function(e) NULL)
    }
    tryCatch({
      exprs <- parse(text = code, keep.source = FALSE,
                     srcfile = sprintf("<cell %d>", cell))
      for (e in exprs) {
        withCallingHandlers({
          if (is.null(display_out)) {
            res <- withVisible(eval(e, envir = globalenv()))
            if (res$visible) print(res$value)
          } else {
            eval_recorded(e)
          }
        }, warning = function(w) {
          message("Warning: ", conditionMessage(w))
          invokeRestart("muffleWarning")
        })
      }
    }, error = function(err) {
      message("Error in <cell ", cell, ">: ", conditionMessage(err))
      emit_error(err)
      status <<- 1L
    })
    if (!is.null(device) && device %in% grDevices::dev.list()) {
      grDevices::dev.off(device)
    }
    if (!is.null(plots)) emit_plots(plots)
    status
  }

  repeat {
    header <- read_header()
    if (is.null(header)) break
    cell <- as.integer(header[1])
    length <- header[2]
    raw_code <- if (length > 0) readBin(code_in, "raw", length) else raw(0)
    code <- rawToChar(raw_code)
    status <- run_cell(code, cell)
    flush(stdout())
    flush(stderr())
    writeBin(charToRaw(sprintf("%d %d\n", cell, status)), status_out)
    flush(status_out)
  }
})
