/**
 * An ink frame drawn on stderr, with `print` for the other lines meant for stderr while it is
 * drawn (the command's header, the log's entries, SIGINT's note): ink redraws by erasing as many
 * lines as its frame had, so a line written beside it would be erased by the next redraw.
 * `print` writes it above the frame through ink's own stderr writer (erase the frame, write the
 * line, draw the frame again), as written, unwrapped; once the frame is done, straight to stderr.
 * Used by the backfill and dlq replay progress bars.
 */
import {useLayoutEffect, type ReactElement} from 'react'
import {render, useStderr} from 'ink'

type Write = (data: string) => void

/** The frame, handing ink's stderr writer to `onWriter`. */
function Framed({frame, onWriter}: {frame: ReactElement; onWriter: (write: Write) => void}) {
  const {write} = useStderr()
  useLayoutEffect(() => onWriter(write), [write, onWriter])
  return frame
}

export interface StderrFrame {
  /** draws `frame` in place of the last one (nothing once done) */
  rerender(frame: ReactElement): void
  /** a line for stderr, kept above the frame */
  print(line: string): void
  /** draws `frame` a last time, if given, and leaves it on the screen */
  done(frame?: ReactElement): void
}

export function renderOnStderr(first: ReactElement): StderrFrame {
  let writer: Write | undefined
  const onWriter = (w: Write) => {
    writer = w
  }
  const app = render(<Framed frame={first} onWriter={onWriter} />, {stdout: process.stderr, patchConsole: false})
  let finished = false
  const rerender = (frame: ReactElement) => {
    if (!finished) app.rerender(<Framed frame={frame} onWriter={onWriter} />)
  }
  return {
    rerender,
    print(line) {
      if (finished || !writer) process.stderr.write(line + '\n')
      else writer(line + '\n')
    },
    done(frame) {
      if (finished) return
      if (frame) rerender(frame)
      finished = true
      app.unmount()
    },
  }
}
