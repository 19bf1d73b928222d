# egg's R driver: one live R session for every R cell of an egg. It reads
# cells from fd 3 as "<cell> <length>\n" followed by the code, evaluates
# each in the global environment, prints visible values as the console
# would, and writes "<cell> <status>\n" on fd 4.
local({
  code_in <- file("/dev/fd/3", open = "rb")
  status_out <- file("/dev/fd/4", open = "wb")

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
    tryCatch({
      exprs <- parse(text = code, keep.source = FALSE,
                     srcfile = sprintf("<cell %d>", cell))
      for (e in exprs) {
        withCallingHandlers({
          res <- withVisible(eval(e, envir = globalenv()))
          if (res$visible) print(res$value)
        }, warning = function(w) {
          message("Warning: ", conditionMessage(w))
          invokeRestart("muffleWarning")
        })
      }
    }, error = function(err) {
      message("Error in <cell ", cell, ">: ", conditionMessage(err))
      status <<- 1L
    })
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
