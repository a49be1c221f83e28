package main

import (
	"fmt"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// rateSeries turns progress samples into MB/s over each interval, placed
// at the interval's end.
func rateSeries(s []sample) plotter.XYs {
	var xys plotter.XYs
	for i := 1; i < len(s); i++ {
		dt := (s[i].at - s[i-1].at).Seconds()
		if dt <= 0 {
			continue
		}
		xys = append(xys, plotter.XY{X: s[i].at.Seconds(), Y: float64(s[i].bytes-s[i-1].bytes) / dt / 1e6})
	}
	return xys
}

// plotRates draws the rate over time of one round of each pairing (the
// round of its median rate) into an SVG at path.
func plotRates(path, title string, lines []rateLine) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "seconds since the downloader started"
	p.Y.Label.Text = "MB/s written by the downloader (per 250 ms)"
	p.Y.Min = 0
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	for i, l := range lines {
		xys := rateSeries(l.samples)
		if len(xys) == 0 {
			continue
		}
		line, err := plotter.NewLine(xys)
		if err != nil {
			return fmt.Errorf("plot %s: %w", l.label, err)
		}
		line.Color = plotutil.Color(i)
		line.Dashes = plotutil.Dashes(i)
		line.Width = vg.Points(1.2)
		p.Add(line)
		p.Legend.Add(l.label, line)
	}
	return p.Save(8*vg.Inch, 4.5*vg.Inch, path)
}

// rateLine is one curve of the plot.
type rateLine struct {
	label   string
	samples []sample
}
